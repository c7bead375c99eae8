#!/usr/bin/env bash
# Waits (up to 10 s) until NAME is owned on the session D-Bus: a service started in the
# background is ready once it holds its name. Exits non-zero, saying so, if it never is:
# callers must stop there (the service they wait for did not start).
# Usage: scripts/wait-for-bus-name.sh NAME
set -u
if [ $# -ne 1 ]; then
  echo "usage: $0 NAME" >&2
  exit 2
fi
if ! command -v dbus-send >/dev/null; then
  echo "wait-for-bus-name: dbus-send is not installed, so $1 cannot be waited for" >&2
  exit 1
fi
for _ in $(seq 200); do
  dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner "string:$1" 2>/dev/null | grep -q "boolean true" && exit 0
  sleep 0.05
done
echo "wait-for-bus-name: $1 did not appear on the session bus within 10 s" >&2
exit 1
