# Sourced by bench/run.sh and bench/profile.sh: the one service they
# measure, N × busybox `sleep 3600` with init and a 1 s grace, as muster's
# file and as compose's; GEN goes into its environment, so a new GEN is a
# config change. The caller sets IMAGE.

service_muster() { # PATH PROJECT COUNT GEN PARALLELISM
  cat >"$1" <<EOF
project = "$2"
[services.svc]
image = "$IMAGE"
count = $3
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
env = { GEN = "$4" }
[services.svc.update]
parallelism = $5
EOF
}

service_compose() { # PATH GEN
  cat >"$1" <<EOF
version: "2.4"
services:
  svc:
    image: $IMAGE
    command: ["sleep", "3600"]
    init: true
    stop_grace_period: 1s
    environment:
      GEN: "$2"
EOF
}
