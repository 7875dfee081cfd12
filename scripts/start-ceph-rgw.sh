#!/usr/bin/env bash
# A single-node Ceph (one monitor, one in-memory OSD) with a radosgw S3 endpoint, on 127.0.0.1
# only, for running the S3 suites against a production S3 implementation instead of the fauxqs
# emulator (issue 15). Optional: npm test never needs it. Needs Debian's ceph-mon, ceph-osd,
# radosgw and ceph-common (apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common).
#
#   scripts/start-ceph-rgw.sh [DIR]   starts it in DIR (default: a new temporary directory) and
#                                     prints the S3_TEST_* settings test/setup/global-setup.ts reads,
#                                     the directory and the PIDs to stop: kill $CEPH_PIDS
#
# The daemons write to DIR/log only, so $(scripts/start-ceph-rgw.sh) returns once they are up.
# The OSD keeps its objects in memory (memstore): nothing touches the disk but logs and the
# monitor's small database, and stopping the daemons throws everything away.
set -euo pipefail

DIR=${1:-$(mktemp -d /tmp/tusbox-ceph-XXXXXX)}
MON_PORT=${CEPH_MON_PORT:-6789}
RGW_PORT=${CEPH_RGW_PORT:-7480}
MEMSTORE_BYTES=${CEPH_MEMSTORE_BYTES:-4294967296}
ACCESS_KEY=tusbox-test
SECRET_KEY=tusbox-test-secret
CONF="$DIR/ceph.conf"
mkdir -p "$DIR"/{run,log,mon.a,osd.0,rgw}

# On any failure, stop the daemons this script started (by PID), so that nothing is left running.
PIDS=()
stop_started() {
  if ((${#PIDS[@]})); then kill "${PIDS[@]}" 2>/dev/null || true; fi
  echo "start-ceph-rgw.sh failed; logs in $DIR/log" >&2
}
trap stop_started ERR

FSID=$(cat /proc/sys/kernel/random/uuid)
cat >"$CONF" <<CONF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
keyring = $DIR/keyring
[mon.a]
mon data = $DIR/mon.a
mon addr = v1:127.0.0.1:$MON_PORT
[osd.0]
osd data = $DIR/osd.0
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
[client.rgw.a]
# tcp_nodelay: without it every request with a body waits ~40 ms (Nagle against delayed ACKs).
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $DIR/rgw
rgw dns name = 127.0.0.1
# Deleted objects (and the parts of completed or aborted multipart uploads) wait for radosgw's
# garbage collector, 2 h by default: with the OSD in memory, a benchmark run would fill it.
rgw gc obj min wait = 0
rgw gc processor period = 5
CONF

ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
ceph-mon -c "$CONF" -i a -f >>"$DIR/log/mon.a.out" 2>&1 </dev/null &
MON_PID=$!
PIDS+=("$MON_PID")
ceph -c "$CONF" --connect-timeout 30 status >/dev/null

OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$(ceph -c "$CONF" osd new "$OSD_UUID")
ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" 2>>"$DIR/log/osd-mkfs.log"
start_osd() {
  ceph-osd -c "$CONF" -i "$OSD_ID" -f >>"$DIR/log/osd.0.out" 2>&1 </dev/null &
  OSD_PID=$!
  PIDS+=("$OSD_PID")
}
start_osd

radosgw -c "$CONF" -n client.rgw.a -f >>"$DIR/log/rgw.a.out" 2>&1 </dev/null &
RGW_PID=$!
PIDS+=("$RGW_PID")

# radosgw answers once its pools exist, which needs the OSD up.
# Now and then (one start in two, once, on a busy machine) the OSD's first command to the
# monitor carries a null fsid ("mon_cmd_maybe_osd_create fail: 'wrong fsid'") and the OSD exits
# at once; started again, it joins.
OSD_STARTS=1
for _ in $(seq 1 120); do
  if curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/"; then break; fi
  if ! kill -0 "$OSD_PID" 2>/dev/null && ((OSD_STARTS < 3)); then
    OSD_STARTS=$((OSD_STARTS + 1))
    start_osd
  fi
  sleep 1
done
curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/"
radosgw-admin -c "$CONF" user create --uid tusbox-test --display-name tusbox-test \
  --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" >/dev/null

cat <<OUT
S3_TEST_ENDPOINT=http://127.0.0.1:$RGW_PORT
S3_TEST_REGION=us-east-1
S3_TEST_ACCESS_KEY_ID=$ACCESS_KEY
S3_TEST_SECRET_ACCESS_KEY=$SECRET_KEY
CEPH_DIR=$DIR
CEPH_PIDS="$MON_PID $OSD_PID $RGW_PID"
OUT
