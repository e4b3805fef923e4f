#!/usr/bin/env bash
# bench/tap.sh: the capture tap against a plain websocket proxy, on loopback.
#
# Starts a websocket echo server (wsbench echo), then one target at a time:
#   direct    the echo server itself, no proxy
#   nginx     nginx (the Debian package) as a websocket reverse proxy
#   tap-off   preheat tap with --capture=false
#   tap-on    preheat tap capturing every session into a file:// stream
#   base-off, base-on  the same with another build of preheat (BASE), for
#             a before-and-after in one run, rounds interleaved
# and for each, on a freshly started proxy process:
#   1. idle memory: the proxy's resident memory (VmRSS; nginx: its workers
#      summed) before and while IDLE_CONNS connections are held open after
#      one connect message each, divided by IDLE_CONNS;
#   2. saturation: CONNS connections closed loop for DURATION: messages/s;
#   3. round trips: CONNS connections at RATE msg/s in aggregate for
#      DURATION: p50/p99 round trip;
# reading the proxy's CPU time (utime+stime from /proc/PID/stat, every
# process of it) around 2 and 3, and for the tap the frames it recorded.
# ROUNDS repeats the whole sequence; the report shows medians and ranges.
#
# The load generator, the echo server and the proxy share the machine's
# cores: at saturation they compete, identically for every target. nginx
# runs worker_processes auto (one worker per core), the tap GOMAXPROCS = the
# core count, so both may use every core.
#
# Usage: bench/tap.sh            (from the repository root or anywhere)
# Environment: ROUNDS (1) CONNS (64) DURATION (10s) WARMUP (1s) RATE (2000)
#   IDLE_CONNS (2000) IDLE_HOLD (8s) TARGETS ("direct nginx tap-off tap-on")
#   PORT_BASE (18000) KEEP (set: keep the work directory) NGINX (nginx)
#   TAP_ENV (environment for the tap process only, e.g. "GOMAXPROCS=1")
#   TAP_ARGS (extra tap flags, e.g. "--event-loops 0" for the goroutine core)
#   OUT (records file; default in the work directory)
#   BASE (a preheat binary for the base-* targets, e.g. one built from
#   `git archive HEAD | tar -x -C /tmp/base`)
set -euo pipefail

ROUNDS=${ROUNDS:-1}
CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
RATE=${RATE:-2000}
IDLE_CONNS=${IDLE_CONNS:-2000}
IDLE_HOLD=${IDLE_HOLD:-8s}
TARGETS=${TARGETS:-direct nginx tap-off tap-on}
TAP_ENV=${TAP_ENV:-}
TAP_ARGS=${TAP_ARGS:-}
PORT_BASE=${PORT_BASE:-18000}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

ECHO_PORT=$PORT_BASE
NGINX_PORT=$((PORT_BASE + 1))
TAP_PORT=$((PORT_BASE + 2))
ADMIN_PORT=$((PORT_BASE + 3))
HOST=127.0.0.1

cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/preheat-bench-tap.XXXXXX)
OUT=${OUT:-$WORK/records.jsonl}
: >"$OUT"
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [[ -n ${KEEP:-} ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[[ -x $NGINX ]] || [[ $TARGETS != *nginx* ]] || die "nginx not found; apt-get install nginx-light, or set TARGETS without nginx"
# Every connection through a proxy costs it two descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) > 2 * IDLE_CONNS + 256)) || die "ulimit -n $(ulimit -n) is too low for IDLE_CONNS=$IDLE_CONNS"

log "building into $WORK"
go build -o "$WORK/preheat" ./cmd/preheat
go build -o "$WORK/wsbench" ./internal/wsbench/cmd/wsbench
WSBENCH=$WORK/wsbench
TICK=$(getconf CLK_TCK)

# wait_port PORT: until something accepts on HOST:PORT, at most 10 s.
wait_port() {
	local i
	for i in $(seq 100); do
		if (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "nothing listening on $HOST:$1"
}

# port_free PORT: fails if something already listens on HOST:PORT, which
# would otherwise be measured in place of our own process.
port_free() {
	if (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; then
		die "$HOST:$1 is already in use; set PORT_BASE to a free range"
	fi
}

# proc_pids PID: PID and its children (nginx's master and workers).
proc_pids() {
	echo "$1"
	ps -o pid= --ppid "$1" 2>/dev/null || true
}

# cpu_s PID: CPU seconds (user+system) used so far by PID and its children.
cpu_s() {
	local p ticks=0 stat
	for p in $(proc_pids "$1"); do
		stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		stat=${stat##*) } # fields after the command name
		set -- $stat
		ticks=$((ticks + ${12} + ${13})) # utime, stime: fields 14 and 15
	done
	awk -v t="$ticks" -v hz="$TICK" 'BEGIN { printf "%.3f", t / hz }'
}

# rss_kb PID: resident KiB of PID, or for nginx of its workers.
rss_kb() {
	local p kb=0 v pids
	pids=$(ps -o pid= --ppid "$1" 2>/dev/null || true)
	[[ -n $pids ]] || pids=$1
	for p in $pids; do
		v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
		kb=$((kb + v))
	done
	echo "$kb"
}

# tap_metric NAME: the sum of a tap metric's series, 0 for other targets.
tap_metric() {
	[[ $TARGET == tap-* || $TARGET == base-* ]] || {
		echo 0
		return
	}
	curl -fsS "http://$HOST:$ADMIN_PORT/metrics" | awk -v n="$1" 'index($0, n) == 1 { s += $NF } END { printf "%.0f", s }'
}

# go_mem: the tap's Go memory figures as a JSON object.
go_mem() {
	curl -fsS "http://$HOST:$ADMIN_PORT/metrics" | awk '
		$1 == "go_memstats_heap_inuse_bytes" { h = $2 }
		$1 == "go_memstats_stack_inuse_bytes" { s = $2 }
		$1 == "go_goroutines" { g = $2 }
		END { printf "{\"heap_inuse\":%d,\"stack_inuse\":%d,\"goroutines\":%d}", h, s, g }'
}

start_echo() {
	port_free "$ECHO_PORT"
	"$WSBENCH" echo --listen "$HOST:$ECHO_PORT" --max-duration 4h 2>"$WORK/echo.log" &
	ECHO_PID=$!
	PIDS+=("$ECHO_PID")
	wait_port "$ECHO_PORT"
}

write_nginx_conf() {
	mkdir -p "$WORK/nginx"
	cat >"$WORK/nginx/nginx.conf" <<EOF
# Minimal websocket reverse proxy: one worker per core, like the tap's
# GOMAXPROCS; defaults everywhere else.
worker_processes auto;
worker_rlimit_nofile $(ulimit -n);
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events {
    worker_connections 16384;
}
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen $HOST:$NGINX_PORT;
        location / {
            proxy_pass http://$HOST:$ECHO_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }
    }
}
EOF
}

# start_target: starts TARGET's proxy; sets PROXY_PID (empty for direct) and URL.
start_target() {
	PROXY_PID=
	case $TARGET in
	direct)
		URL=ws://$HOST:$ECHO_PORT/sync
		return
		;;
	nginx)
		port_free "$NGINX_PORT"
		write_nginx_conf
		"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>>"$WORK/nginx/stderr.log" &
		PROXY_PID=$!
		URL=ws://$HOST:$NGINX_PORT/sync
		wait_port "$NGINX_PORT"
		;;
	tap-off | tap-on | base-off | base-on)
		local capture=true bin=$WORK/preheat
		[[ $TARGET == *-on ]] || capture=false
		if [[ $TARGET == base-* ]]; then
			[[ -x ${BASE:-} ]] || die "$TARGET: set BASE to a preheat binary"
			bin=$BASE
		fi
		port_free "$TAP_PORT"
		port_free "$ADMIN_PORT"
		rm -rf "$WORK/stream"
		env $TAP_ENV "$bin" tap --listen "$HOST:$TAP_PORT" --upstream "ws://$HOST:$ECHO_PORT" \
			--stream "file://$WORK/stream" --admin-listen "$HOST:$ADMIN_PORT" --capture="$capture" \
			--tap-id bench $TAP_ARGS 2>>"$WORK/tap-$TARGET.log" &
		PROXY_PID=$!
		URL=ws://$HOST:$TAP_PORT/sync
		wait_port "$TAP_PORT"
		wait_port "$ADMIN_PORT"
		;;
	*) die "unknown target $TARGET" ;;
	esac
	PIDS+=("$PROXY_PID")
}

stop_target() {
	[[ -n $PROXY_PID ]] || return 0
	kill "$PROXY_PID" 2>/dev/null || true
	wait "$PROXY_PID" 2>/dev/null || true
	local p keep=()
	for p in "${PIDS[@]}"; do
		[[ $p == "$PROXY_PID" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
	PROXY_PID=
}

# measure_idle: sets RSS_BEFORE and RSS_IDLE.
measure_idle() {
	RSS_BEFORE=0 RSS_IDLE=0 BEFORE_GO=null IDLE_GO=null
	if [[ -z $PROXY_PID ]]; then
		return
	fi
	sleep 1
	RSS_BEFORE=$(rss_kb "$PROXY_PID")
	if [[ $TARGET == tap-* || $TARGET == base-* ]]; then
		BEFORE_GO=$(go_mem)
	fi
	local err=$WORK/idle.err i
	"$WSBENCH" idle --url "$URL" --conns "$IDLE_CONNS" --hold "$IDLE_HOLD" --max-conns "$IDLE_CONNS" >/dev/null 2>"$err" &
	local idle_pid=$!
	for i in $(seq 300); do
		grep -q '^holding' "$err" && break
		kill -0 "$idle_pid" 2>/dev/null || break
		sleep 0.1
	done
	grep -q '^holding' "$err" || {
		cat "$err" >&2
		die "$TARGET: idle connections did not open"
	}
	sleep 2 # let the proxy settle
	RSS_IDLE=$(rss_kb "$PROXY_PID")
	if [[ $TARGET == tap-* || $TARGET == base-* ]]; then
		curl -fsS "http://$HOST:$ADMIN_PORT/metrics" >"$WORK/metrics-$TARGET-idle-$round.txt"
		IDLE_GO=$(go_mem)
	fi
	wait "$idle_pid" || die "$TARGET: idle run failed: $(cat "$err")"
	sleep 1
}

# run_load NAME ARGS...: runs wsbench load; sets LOAD_JSON, LOAD_CPU, LOAD_FRAMES.
run_load() {
	local name=$1 c0=0 c1=0 f0 f1
	shift
	f0=$(tap_metric preheat_tap_frames_recorded_total)
	[[ -z $PROXY_PID ]] || c0=$(cpu_s "$PROXY_PID")
	LOAD_JSON=$("$WSBENCH" load --url "$URL" --conns "$CONNS" --duration "$DURATION" --warmup "$WARMUP" "$@" 2>>"$WORK/load.log") ||
		die "$TARGET $name: load failed: $(tail -3 "$WORK/load.log")"
	sleep 1 # the tap's exporters finish the batches the run left
	[[ -z $PROXY_PID ]] || c1=$(cpu_s "$PROXY_PID")
	f1=$(tap_metric preheat_tap_frames_recorded_total)
	LOAD_CPU=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", b - a }')
	LOAD_FRAMES=$((f1 - f0))
	log "  $TARGET $name: $(tail -1 "$WORK/load.log"); proxy CPU ${LOAD_CPU}s"
}

log "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
start_echo
read -r -a TARGET_LIST <<<"$TARGETS"
NT=${#TARGET_LIST[@]}
for round in $(seq "$ROUNDS"); do
	# Each round starts one target later, so no target always runs first
	# or last while the machine's background load drifts.
	for ((k = 0; k < NT; k++)); do
		TARGET=${TARGET_LIST[$(((k + round - 1) % NT))]}
		log "round $round: $TARGET"
		start_target
		measure_idle
		[[ -z $PROXY_PID ]] || log "  $TARGET idle: RSS ${RSS_BEFORE} KiB -> ${RSS_IDLE} KiB with $IDLE_CONNS connections"
		run_load saturation
		SAT_JSON=$LOAD_JSON SAT_CPU=$LOAD_CPU SAT_FRAMES=$LOAD_FRAMES
		run_load fixed-rate --rate "$RATE"
		FIXED_JSON=$LOAD_JSON FIXED_CPU=$LOAD_CPU FIXED_FRAMES=$LOAD_FRAMES
		DROPPED=$(($(tap_metric preheat_tap_sessions_dropped_total) + $(tap_metric preheat_tap_sessions_cut_total)))
		stop_target
		printf '{"round":%d,"target":"%s","sat":%s,"sat_cpu_s":%s,"sat_frames":%s,"fixed":%s,"fixed_cpu_s":%s,"fixed_frames":%s,"idle_conns":%d,"rss_before_kb":%s,"rss_idle_kb":%s,"dropped":%s,"go_before":%s,"go_idle":%s,"loadavg":"%s"}\n' \
			"$round" "$TARGET" "$SAT_JSON" "$SAT_CPU" "$SAT_FRAMES" "$FIXED_JSON" "$FIXED_CPU" "$FIXED_FRAMES" \
			"$IDLE_CONNS" "$RSS_BEFORE" "$RSS_IDLE" "$DROPPED" "$BEFORE_GO" "$IDLE_GO" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT"
	done
done
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); records in $OUT"
"$WSBENCH" report <"$OUT"
