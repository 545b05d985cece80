// tradeops as a monitoring mixin (the monitoring.mixins.dev conventions): the shipped alert_rules/ and
// grafana_dashboards/, unchanged but for the selectors of _config, for jsonnet users (jsonnet-bundler, kube-prometheus):
//
//   local tradeops = (import 'mixin/mixin.libsonnet') + {
//     _config+:: { exporterSelector: 'job="my-exporter"', ruleFiles: ['tradeops.yml', 'thresholds.yml', 'trademaster.yml'] },
//   };
//   tradeops.prometheusAlerts    // {groups: [...]}: the alerting rules
//   tradeops.prometheusRules     // {groups: [...]}: the recording rules (the thresholds the alerts read: load both)
//   tradeops.grafanaDashboards   // {'overview.json': {...}, ...}
//
// The YAML rule files and the dashboards stay the sources: sources.libsonnet is generated from them (`make generate`),
// and tests/unit/test_mixin.py renders this file with jsonnet and checks its output against them, promtool included.
local sources = import 'sources.libsonnet';
local missing(kind, name, where, known) =
  error 'mixin.libsonnet: _config.%s names %s, which is not in %s (%s)' % [kind, name, where, std.join(', ', std.objectFields(known))];

{
  _config+:: {
    // The mastertrade profile's set (deploy/profiles/<system>/profile.yml names each system's).
    ruleFiles: ['tradeops.yml', 'thresholds.yml', 'mastertrade.yml'],
    dashboards: ['overview.json', 'collectors.json', 'backups.json', 'remediation.json'],
    // The scrape jobs that tradeops' own alerts watch (TradeopsExporterDown, TradeopsRemediatorDown).
    exporterSelector: 'job="tradeops-exporter"',
    remediatorSelector: 'job="tradeops-remediator"',
  },

  local config = self._config,
  local select(expr) = std.strReplace(
    std.strReplace(expr, 'job="tradeops-exporter"', config.exporterSelector),
    'job="tradeops-remediator"',
    config.remediatorSelector
  ),
  local groups = std.flattenArrays([
    if std.objectHas(sources.ruleFiles, name) then sources.ruleFiles[name].groups
    else missing('ruleFiles', name, 'alert_rules/', sources.ruleFiles)
    for name in config.ruleFiles
  ]),
  local only(kind) = [
    group { rules: [rule { expr: select(rule.expr) } for rule in group.rules if std.objectHas(rule, kind)] }
    for group in groups
  ],

  prometheusAlerts+:: { groups+: [group for group in only('alert') if group.rules != []] },
  prometheusRules+:: { groups+: [group for group in only('record') if group.rules != []] },
  grafanaDashboards+:: {
    [name]: if std.objectHas(sources.dashboards, name) then sources.dashboards[name]
    else missing('dashboards', name, 'grafana_dashboards/', sources.dashboards)
    for name in config.dashboards
  },
}
