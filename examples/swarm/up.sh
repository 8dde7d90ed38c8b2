#!/usr/bin/env bash
# The swarm quick start (the engine must be a swarm manager: `docker swarm
# init` once): makes the examples' image (no registry needed), then
# applies this directory's services.toml with the installed `muster`, or,
# from a source checkout without one, with `cargo run`. Run it again after
# editing the file, or use `muster watch`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/../image.sh"
if command -v muster >/dev/null; then
  exec muster -f "$here/services.toml" apply "$@"
fi
cd "$here/../.."
exec cargo run --quiet -- -f "$here/services.toml" apply "$@"
