#!/usr/bin/env bash
# Installs (Debian packages) and starts every real component the tests need, idempotently.
# Under CI=true a component that cannot be made ready fails the run; elsewhere it is reported and the
# tests that need it skip with the reason.
set -u

STATE_DIR=${TRADEOPS_STATE_DIR:-/var/lib/tradeops-test}
DOCKER_SOCK=${TRADEOPS_DOCKER_SOCK:-/run/tradeops-docker/docker.sock}
IMAGE=${TRADEOPS_TEST_IMAGE:-tradeops/busybox:latest}
failures=()

say() { printf 'prereqs: %s\n' "$*"; }
fail() { failures+=("$1"); say "NOT READY: $1"; }

wait_for() { # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.5
  done
}

apt_updated=0
ensure_pkg() { # ensure_pkg BINARY PACKAGE...
  local binary=$1; shift
  command -v "$binary" >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || { fail "$binary missing (install: apt-get install $*)"; return 1; }
  if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null 2>&1; apt_updated=1; fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { fail "apt-get install $* failed"; return 1; }
}

ensure_pkg pg_ctlcluster postgresql
ensure_pkg redis-server redis-server
ensure_pkg rabbitmq-server rabbitmq-server
ensure_pkg promtool prometheus
ensure_pkg prometheus-alertmanager prometheus-alertmanager
ensure_pkg prometheus-node-exporter prometheus-node-exporter  # the e2e and demo stacks' host metrics
ensure_pkg dockerd docker.io
ensure_pkg busybox busybox-static
ensure_pkg curl curl
ensure_pkg chromium chromium  # the console's browser tests (Playwright drives /usr/bin/chromium; no browser download)
ensure_pkg openssl openssl
ensure_pkg shellcheck shellcheck  # tests/unit/test_artefacts.py on scripts/*.sh and .ci/run
ensure_pkg jsonnet jsonnet  # tests/unit/test_mixin.py renders mixin/mixin.libsonnet
# The Go peer exporters are only needed by `make bench` (TRADEOPS_BENCH=1).
if [ "${TRADEOPS_BENCH:-0}" = 1 ]; then
  ensure_pkg prometheus-postgres-exporter prometheus-postgres-exporter
  ensure_pkg prometheus-redis-exporter prometheus-redis-exporter
fi

# PostgreSQL
if ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then
  say "starting PostgreSQL"
  pg_versions=(/etc/postgresql/*/)  # sorted, as ls would; the newest cluster version last
  pg_version=$(basename "${pg_versions[-1]}")
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start >/dev/null 2>&1
  wait_for 30 pg_isready -h 127.0.0.1 -q || fail "PostgreSQL on 127.0.0.1:5432"
fi

# Redis
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1
  wait_for 15 redis-cli -h 127.0.0.1 ping || fail "Redis on 127.0.0.1:6379"
fi

# RabbitMQ with the management plugin
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  say "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1
  wait_for 90 rabbitmqctl -q await_startup || fail "RabbitMQ on 127.0.0.1:5672"
fi
if ! curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then
  say "enabling rabbitmq_management"
  rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1
  wait_for 60 curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview \
    || fail "RabbitMQ management API on 127.0.0.1:15672"
fi

# Docker engine on its own socket, no bridge, no iptables; containers use host networking.
docker_ok() { DOCKER_HOST="unix://$DOCKER_SOCK" docker version --format '{{.Server.Version}}'; }
if command -v dockerd >/dev/null 2>&1 && ! docker_ok >/dev/null 2>&1; then
  say "starting dockerd on $DOCKER_SOCK"
  mkdir -p "$(dirname "$DOCKER_SOCK")" /var/lib/tradeops-docker /var/log
  nohup dockerd --host "unix://$DOCKER_SOCK" --data-root /var/lib/tradeops-docker \
    --exec-root "$(dirname "$DOCKER_SOCK")/exec" --pidfile "$(dirname "$DOCKER_SOCK")/docker.pid" \
    --bridge=none --iptables=false --ip6tables=false >/var/log/tradeops-dockerd.log 2>&1 &
  wait_for 30 docker_ok || fail "dockerd on $DOCKER_SOCK (log: /var/log/tradeops-dockerd.log)"
fi
if docker_ok >/dev/null 2>&1; then
  if ! DOCKER_HOST="unix://$DOCKER_SOCK" docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "importing $IMAGE from busybox-static"
    rootfs=$(mktemp -d)
    mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/www"
    cp "$(command -v busybox)" "$rootfs/bin/busybox"
    for applet in sh sleep httpd cat echo ls true false kill; do ln -s busybox "$rootfs/bin/$applet"; done
    tar -C "$rootfs" -c . | DOCKER_HOST="unix://$DOCKER_SOCK" docker import - "$IMAGE" >/dev/null \
      || fail "docker import $IMAGE"
    rm -rf "$rootfs"
  fi
else
  fail "Docker engine"
fi

mkdir -p "$STATE_DIR"
if [ "${#failures[@]}" -gt 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    say "CI=true and ${#failures[@]} prerequisite(s) are not ready: ${failures[*]}"
    exit 1
  fi
  say "continuing; tests needing these will skip: ${failures[*]}"
fi
exit 0
