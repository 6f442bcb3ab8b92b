#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers at the given AMQP URL. When nothing
# answers and the broker is local, it starts an installed rabbitmq-server, or
# the docker-compose service where a Docker engine runs; otherwise it says how
# to get one and fails.
set -euo pipefail

url="${1:-amqp://guest:guest@127.0.0.1:5672/}"
hostport="${url#*://}"
hostport="${hostport#*@}"
hostport="${hostport%%/*}"
host="${hostport%%:*}"
port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=5672

answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if answers; then
	exit 0
fi

case "$host" in
127.0.0.1 | localhost | ::1) ;;
*)
	echo "RabbitMQ does not answer at $host:$port (AMQP_URL). Start it there, or unset AMQP_URL to use a local one." >&2
	exit 1
	;;
esac

if command -v rabbitmq-server >/dev/null 2>&1; then
	echo "starting the local rabbitmq-server"
	rabbitmq-server -detached >/dev/null 2>&1 || true
	timeout 120 rabbitmqctl await_startup >/dev/null
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	echo "starting RabbitMQ with docker compose"
	docker compose up -d --wait rabbitmq
else
	cat >&2 <<'MSG'
RabbitMQ does not answer at 127.0.0.1:5672 and none is installed here. Get one with either:
  sudo apt-get install rabbitmq-server        (Debian/Ubuntu; then: sudo rabbitmq-server -detached)
  docker compose up -d rabbitmq               (where a Docker engine runs)
or point AMQP_URL at a running broker.
MSG
	exit 1
fi

for _ in $(seq 1 60); do
	answers && exit 0
	sleep 1
done
echo "RabbitMQ was started but does not answer at $host:$port" >&2
exit 1
