#!/usr/bin/env bash
# A real S3 engine on loopback for the remote-tier tests and the local demo: Ceph's RADOS Gateway, one monitor,
# one memstore OSD, no cephx, everything under one directory.
#
#   scripts/rgw.sh install            apt packages (root)
#   scripts/rgw.sh start DIR [PORT]   starts the daemons (the gateway on PORT, default 7480, the monitor on PORT+1),
#                                     creates a user and the bucket `ckptio`, writes DIR/env
#   scripts/rgw.sh stop DIR           stops them by their pid files
#   scripts/rgw.sh restart-gateway DIR  restarts only radosgw (the fault tests kill it)
#
# DIR/env holds AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and CKPTIO_TEST_BUCKET;
# `source DIR/env` and the AWS tools and ckptio find the gateway.
set -euo pipefail

cmd=${1:-}
dir=${2:-}

conf() { echo "$dir/ceph.conf"; }

wait_for() { # seconds, description, command...
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "rgw.sh: $what did not come up within ${secs}s (logs in $dir/log)" >&2; return 1; fi
    sleep 0.2
  done
}

start_gateway() {
  radosgw -c "$(conf)" -n client.rgw.a 2>>"$dir/log/rgw-start.log"
  local port
  port=$(cat "$dir/port")
  wait_for 120 "radosgw on port $port" curl -sf -o /dev/null "http://127.0.0.1:$port/"
}

case "$cmd" in
  install)
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ceph-mon ceph-osd radosgw ceph-common curl >/dev/null
    ;;
  start)
    [ -n "$dir" ] || { echo "usage: rgw.sh start DIR [PORT]" >&2; exit 2; }
    port=${3:-7480}
    mkdir -p "$dir"/{mon,osd,run,log}
    dir=$(cd "$dir" && pwd)
    echo "$port" > "$dir/port"
    fsid=$(cat /proc/sys/kernel/random/uuid)
    cat > "$(conf)" <<EOF
[global]
fsid = $fsid
mon host = 127.0.0.1:$((port + 1))
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
paxos propose interval = 0.05
paxos min wait = 0.01
run dir = $dir/run
log file = $dir/log/\$name.log
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
[mon.a]
mon data = $dir/mon
[osd]
osd data = $dir/osd/\$id
osd objectstore = memstore
memstore device bytes = 4294967296
[client]
ms mon client mode = crc
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $dir/rgw
EOF
    monmaptool --create --clobber --add a 127.0.0.1:$((port + 1)) --fsid "$fsid" "$dir/monmap" >/dev/null
    ceph-mon -c "$(conf)" --mkfs -i a --monmap "$dir/monmap" >/dev/null
    ceph-mon -c "$(conf)" -i a
    wait_for 60 "the monitor" ceph -c "$(conf)" --connect-timeout 2 mon stat
    uuid=$(cat /proc/sys/kernel/random/uuid)
    id=$(ceph -c "$(conf)" osd new "$uuid")
    mkdir -p "$dir/osd/$id"
    ceph-osd -c "$(conf)" -i "$id" --mkfs --osd-uuid "$uuid" >/dev/null 2>&1
    ceph-osd -c "$(conf)" -i "$id" 2>>"$dir/log/osd-start.log"
    wait_for 60 "osd.$id" sh -c "ceph -c '$(conf)' osd dump | grep -q '^osd.$id up'"
    start_gateway
    # Test keys, made up here and valid only against this loopback gateway.
    key=CKPTIO$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
    secret=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
    radosgw-admin -c "$(conf)" user create --uid=ckptio --display-name=ckptio --access-key="$key" --secret="$secret" >/dev/null
    cat > "$dir/env" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=$key
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=us-east-1
export CKPTIO_TEST_BUCKET=ckptio
EOF
    # The bucket, through the AWS SDK the project installs (a devDependency; any S3 tool would do).
    (cd "$(dirname "$0")/.." && . "$dir/env" && node -e '
      const s3 = require("@aws-sdk/client-s3");
      new s3.S3Client({ forcePathStyle: true }).send(new s3.CreateBucketCommand({ Bucket: process.env.CKPTIO_TEST_BUCKET }))
        .catch((e) => { console.error(`rgw.sh: creating the bucket failed: ${e.name}`); process.exit(1); });' 2>&1 | grep -v -e NodeVersionSupportWarning -e 'node >=22' -e '^$' -e 'a.co/' -e 'trace-warnings' -e 'January 2027' -e 'upgrade to node' || true)
    echo "rgw.sh: gateway up at http://127.0.0.1:$port with bucket $(. "$dir/env"; echo "$CKPTIO_TEST_BUCKET") (source $dir/env)"
    ;;
  restart-gateway)
    [ -n "$dir" ] || { echo "usage: rgw.sh restart-gateway DIR" >&2; exit 2; }
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/run/client.rgw.a.pid" ]; then kill -9 "$(cat "$dir/run/client.rgw.a.pid")" 2>/dev/null || true; fi
    sleep 0.2
    start_gateway
    ;;
  stop)
    [ -n "$dir" ] || { echo "usage: rgw.sh stop DIR" >&2; exit 2; }
    for name in client.rgw.a osd.0 osd.1 mon.a; do
      pidfile="$dir/run/$name.pid"
      if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
    done
    ;;
  *)
    echo "usage: rgw.sh install | start DIR [PORT] | stop DIR | restart-gateway DIR" >&2
    exit 2
    ;;
esac
