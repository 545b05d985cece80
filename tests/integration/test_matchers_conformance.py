"""tradeops' matchers against Alertmanager's own: each case is a route matcher in a config that `amtool config
routes test` evaluates, and the same text through tradeops' parse_matcher and matches_all. Where amtool refuses a
matcher, tradeops must refuse it too."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from remediator.policy.matchers import matches_all, parse_matcher
from tests.prereqs import require_binary

pytestmark = pytest.mark.integration

# Label sets each case is routed with; "other" stands in for a label set without the matcher's label.
ACCEPTED: list[tuple[str, list[dict[str, str]]]] = [
    ('alertname="A"', [{"alertname": "A"}, {"alertname": "AB"}, {"other": "x"}]),
    ('alertname!="A"', [{"alertname": "A"}, {"alertname": "B"}, {"other": "x"}]),
    ('alertname=~"A|B"', [{"alertname": "B"}, {"alertname": "AB"}]),
    ('alertname=~"A"', [{"alertname": "A"}, {"alertname": "AB"}, {"alertname": "BA"}]),
    ('alertname!~"Crit.*"', [{"alertname": "CriticalServiceDown"}, {"alertname": "Warn"}, {"other": "x"}]),
    ('a=~"a)|(b"', [{"a": "ax"}, {"a": "xb"}, {"a": "b"}, {"a": "xa"}]),  # the anchors wrap the text as given
    ("severity=critical", [{"severity": "critical"}, {"severity": "warning"}]),
    ("a=b c", [{"a": "b c"}, {"a": "b"}]),
    ("a == b", [{"a": "= b"}, {"a": "b"}]),
    ('  a =  "1"  ', [{"a": "1"}, {"a": " 1"}]),
    ('{a="1"}', [{"a": "1"}, {"a": "2"}]),
    ('a="1",', [{"a": "1"}]),
    ('a:b="1"', [{"a:b": "1"}, {"other": "x"}]),
    ('msg="a\\"b"', [{"msg": 'a"b'}, {"msg": "a\\b"}]),
    ('msg="x\\\\y"', [{"msg": "x\\y"}, {"msg": "x\\\\y"}]),
    ('msg="line\\nbreak"', [{"msg": "line\nbreak"}, {"msg": "line\\nbreak"}]),
    ('msg="\\d"', [{"msg": "\\d"}, {"msg": "d"}]),  # a spurious escape keeps its backslash
    ('msg="end\\\\"', [{"msg": "end\\"}]),
    ('a=~"\\d+"', [{"a": "12"}, {"a": "1a"}]),
    ('a=~"\\\\."', [{"a": "."}, {"a": "x"}]),
    ('a=~"x\\.y"', [{"a": "x.y"}, {"a": "xzy"}]),
    ('team=""', [{"team": "x"}, {"other": "x"}]),
    ('team!=""', [{"team": "x"}, {"other": "x"}]),
    ('team=~".+"', [{"team": "x"}, {"other": "x"}]),
    ('team=~".*"', [{"other": "x"}]),
    ('a=~"(?i)crit"', [{"a": "CRIT"}, {"a": "crit"}, {"a": "critical"}]),
    ('a=~"(?s)a.b"', [{"a": "a\nb"}]),
    ('a=~"a.b"', [{"a": "a\nb"}, {"a": "a-b"}]),
    ('a=~"(?m)x$"', [{"a": "x\ny"}, {"a": "x"}]),
    ('a=~"x"', [{"a": "x\n"}]),  # $ is the end of the text, not before a final newline
    ('a=~"[[:alpha:]]+"', [{"a": "abc"}, {"a": "ab1"}]),
    ('a=~"(?P<n>x)+"', [{"a": "xx"}]),
    ('service="café"', [{"service": "café"}, {"service": "cafe"}]),
    ('service=~"caf."', [{"service": "café"}, {"service": "cafés"}]),  # . is one code point, not one byte
    ('service=~"[ä-ö]+"', [{"service": "äö"}, {"service": "ao"}]),
    ('service=~"\\pL+"', [{"service": "Zürich"}, {"service": "Zürich1"}]),
    ('rocket="🚀"', [{"rocket": "🚀"}, {"rocket": "x"}]),
    ("rocket=🚀", [{"rocket": "🚀"}]),
    ('a=~"(a|aa)+"', [{"a": "a" * 40}, {"a": "a" * 40 + "b"}]),  # linear in RE2, exponential in backtracking
    ('a=~"x{2,1000}"', [{"a": "xx"}, {"a": "x"}]),
]

REFUSED = [
    'a=~"(?=x)"',  # lookahead
    'a=~"(?!x)"',
    'a=~"(?<=x)y"',  # lookbehind
    'a=~"(a)\\1"',  # backreference
    'a=~"(?P<n>a)(?P=n)"',
    'a=~"("',
    'a=~"x{1001}"',
    'a=~"\\Z"',
    "alertname",
    '="x"',
    '1a="x"',
    'a-b="x"',
    'a="x" b="y"',
    'a="unterminated',
    'a="1\\"',
    'a="1",b="2"',  # tradeops takes one matcher per list item; amtool splits this one (checked separately)
]


def amtool_config(tmp_path: Path, matcher: str) -> Path:
    """An Alertmanager config with one route whose matcher is the case; other alerts go to the default."""
    config = {
        "route": {"receiver": "default", "routes": [{"receiver": "hit", "matchers": [matcher]}]},
        "receivers": [{"name": "default"}, {"name": "hit"}],
    }
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def label_argument(name: str, value: str) -> str:
    """A `name="value"` argument as amtool parses its label arguments (as matchers, with the same escapes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}="{escaped}"'


def amtool_routes(amtool: str, config: Path, labels: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `amtool config routes test` for one label set."""
    return subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}"]
        + [label_argument(name, value) for name, value in labels.items()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("matcher", "label_sets"), ACCEPTED)
def test_tradeops_matches_every_label_set_as_alertmanager_routes_it(
    tmp_path: Path, matcher: str, label_sets: list[dict[str, str]]
) -> None:
    amtool = require_binary("amtool")
    config = amtool_config(tmp_path, matcher)
    parsed = (parse_matcher(matcher),)
    for labels in label_sets:
        routed = amtool_routes(amtool, config, labels)
        assert routed.returncode == 0, routed.stderr
        alertmanager_matches = routed.stdout.strip() == "hit"
        assert matches_all(parsed, labels) is alertmanager_matches, (matcher, labels, routed.stdout)


@pytest.mark.parametrize("matcher", REFUSED)
def test_a_matcher_alertmanager_refuses_is_refused_by_tradeops(tmp_path: Path, matcher: str) -> None:
    amtool = require_binary("amtool")
    config = amtool_config(tmp_path, matcher)
    with pytest.raises(ValueError, match="matcher") as refused:
        parse_matcher(matcher)
    assert repr(matcher) in str(refused.value)  # the error carries the matcher's text
    if matcher == 'a="1",b="2"':
        return  # Alertmanager reads it as two matchers; tradeops asks for one per list item
    checked = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode != 0, f"amtool accepted {matcher!r}: {checked.stdout}"
