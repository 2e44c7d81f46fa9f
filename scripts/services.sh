#!/usr/bin/env bash
# Check RabbitMQ, Redis and PostgreSQL on loopback; start any that is stopped; wait until all answer.
# Used by .ci/run before the tests. Safe to run again: a running service is left alone.
set -u

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # name port seconds
  local i
  for ((i = 0; i < $3 * 4; i++)); do up "$2" && return 0; sleep 0.25; done
  echo "services: $1 did not come up on 127.0.0.1:$2 within $3 s" >&2
  return 1
}

start_postgres() {
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
}
start_redis() {
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
}
start_rabbitmq() {
  rabbitmq-server -detached
}

status=0
check() {  # name port starter seconds
  if up "$2"; then
    echo "services: $1 is up on 127.0.0.1:$2"
    return 0
  fi
  echo "services: $1 is down; starting it"
  "$3" || true
  wait_for "$1" "$2" "$4" || status=1
}

check PostgreSQL 5432 start_postgres 30
check Redis 6379 start_redis 15
check RabbitMQ 5672 start_rabbitmq 90
# The AMQP port opens before the broker accepts connections: wait for the app itself.
if command -v rabbitmqctl >/dev/null 2>&1; then
  timeout 90 rabbitmqctl await_startup >/dev/null 2>&1 || true
  # A test that stops the app (restart tests) and dies may leave it stopped.
  rabbitmqctl -q status >/dev/null 2>&1 || true
  if ! rabbitmqctl -q eval 'rabbit:is_running().' 2>/dev/null | grep -q true; then
    echo "services: RabbitMQ app is stopped; starting it"
    rabbitmqctl start_app >/dev/null 2>&1 || status=1
  fi
fi
exit $status
