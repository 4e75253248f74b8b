#!/bin/sh
# A launcher, as many apps have one: it sets things up and execs the server, which then runs
# under uproxy with the same process group and environment (uproxy stops the whole group).
cd "$(dirname "$0")" || exit 1
exec python3 app.py
