#!/usr/bin/env bash
# Start the local stand-ins the tests talk to, if they are not running: MariaDB (RDS) on
# 127.0.0.1:3306 and Mosquitto (MQTT) on 127.0.0.1:1883. moto's S3 server is started by the tests.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done; return 1; }

if ! port_open 3306; then
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    apt-get update -q && apt-get install -y -q mariadb-server
  fi
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port 3306 || { echo "MariaDB did not start on 3306" >&2; exit 1; }
fi
if ! port_open 1883; then
  command -v mosquitto >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q mosquitto; }
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
  wait_port 1883 || { echo "Mosquitto did not start on 1883" >&2; exit 1; }
fi
echo "services up: MariaDB 127.0.0.1:3306, Mosquitto 127.0.0.1:1883"
