# shellcheck shell=bash disable=SC2034,SC2154
# (sourced: the caller sets pin_srv and reads URL, or the *_PLAIN and
# *_SHIM variables of start_pair)
# The nginx that bench/nginx_wrk.sh and bench/nginx_perf.sh measure,
# sourced by both (and its site by nginx_callgrind.sh and nginx_lines.sh): Debian's /usr/sbin/nginx, one worker, access_log off, a
# 680-byte index.html, keep-alive, on a free port of 127.0.0.1. The caller
# sets NGINX, EXPORTER and pin_srv (a command prefix, possibly empty), then
# calls site_begin.

# perf_bench_begin BUILD_DIR TAG: what bench/nginx_perf.sh and
# bench/nginx_symbols.sh start with: BUILD, LIB, EXPORTER, NGINX and VERSUS
# (the caller's, resolved) checked to exist (exit 77 when one does not),
# no DYNOBS_/OTEL_ variable or LD_PRELOAD of the caller's, pin_srv and
# pin_wrk (the first and the last CPU, when there are two or more), then
# site_begin TAG and start_pair (VERSUS or plain, and LIB).
perf_bench_begin() {
  BUILD=$(realpath "$1") || exit 2
  VERSUS=${VERSUS:-}
  LIB=$BUILD/libdynobs.so
  EXPORTER=$BUILD/exporter/dynobs-exporter
  NGINX=/usr/sbin/nginx
  if [[ -n $VERSUS ]]; then
    VERSUS=$(realpath "$VERSUS") || exit 2
  fi
  local f v
  for f in "$LIB" "$EXPORTER" "$NGINX" /usr/bin/wrk /usr/bin/perf ${VERSUS:+"$VERSUS"}; do
    [[ -e $f ]] || { echo "missing: $f (build first; Debian: nginx-light, wrk, linux-perf)" >&2; exit 77; }
  done
  while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(DYNOBS_|OTEL_)')
  unset LD_PRELOAD
  NCPU=$(nproc)
  pin_srv=()
  pin_wrk=()
  if ((NCPU >= 2)); then
    pin_srv=(taskset -c 0)
    pin_wrk=(taskset -c "$((NCPU - 1))")
  fi
  site_begin "$2"
  start_pair "$VERSUS" "$LIB"
}

# site_begin TAG: DIR (a temporary directory), SHM (the segments' directory,
# on tmpfs as the default /dev/shm/dynobs is: /tmp may be a disk, whose
# shared file mappings cost write faults and writeback), PIDS (stopped, and
# DIR and SHM removed, at exit) and dynobs-exporter ($EXPORTER) draining SHM
# with nothing exported (EXP_PID): both scripts' nginx report to it.
site_begin() {
  DIR=$(mktemp -d "/tmp/dynobs-nginx-$1-XXXXXX")
  SHM=$(mktemp -d "/dev/shm/dynobs-nginx-$1-XXXXXX")
  chmod 755 "$DIR" "$SHM"
  PIDS=()
  trap site_cleanup EXIT
  env DYNOBS_SHM_DIR="$SHM" OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none \
    OTEL_EXPORTER_PROMETHEUS_PORT=0 OTEL_LOG_LEVEL=warn "$EXPORTER" >"$DIR/exporter.log" 2>&1 &
  EXP_PID=$!
  PIDS+=("$EXP_PID")
}

site_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$DIR" "$SHM"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_listening() {
  local port=$1
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $port; see $DIR/*/error.log" >&2
  cat "$DIR"/*/error.log >&2
  exit 1
}

# nginx_site DIR PORT [single]: DIR/html/index.html (680 bytes) and
# DIR/nginx.conf serving it on 127.0.0.1:PORT: one worker, access_log off,
# keep-alive, 1024 connections; "single": one process (master_process
# off) and 64 connections, as the runs under valgrind have it
# (nginx_callgrind.sh, nginx_lines.sh).
nginx_site() {
  local d=$1 port=$2 single="" conns=1024
  if [[ ${3:-} == single ]]; then
    single="master_process off;"
    conns=64
  fi
  mkdir -p "$d/html"
  chmod 755 "$d" "$d/html"
  for _ in $(seq 40); do echo "hello from nginx"; done >"$d/html/index.html"
  # (each variant byte for byte as its scripts wrote it before they
  # shared it: the valgrind runs' figures depend on nginx's allocations)
  {
    echo "daemon off;"
    [[ -n $single ]] && echo "master_process off;"
    cat <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections $conns; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
EOF
    if [[ -n $single ]]; then
      echo "  server { listen 127.0.0.1:$port; root $d/html; }"
    else
      printf '  server {\n    listen 127.0.0.1:%s;\n    root %s/html;\n  }\n' "$port" "$d"
    fi
    echo "}"
  } >"$d/nginx.conf"
}

# start_nginx NAME LIBRARY: sets PORT and URL (its index.html); the
# master's pid is in DIR/NAME/nginx.pid once it listens. Not run in a
# subshell: the pid must reach PIDS, for the cleanup.
start_nginx() {
  local name=$1 preload=$2 d=$DIR/$1
  PORT=$(free_port)
  nginx_site "$d" "$PORT"
  local envs=()
  [[ -n $preload ]] && envs=(LD_PRELOAD="$preload" DYNOBS_SHM_DIR="$SHM" OTEL_SERVICE_NAME="$name")
  "${pin_srv[@]}" env "${envs[@]}" "$NGINX" -c "$d/nginx.conf" -p "$d" >/dev/null 2>&1 &
  PIDS+=("$!")
  wait_listening "$PORT"
  URL="http://127.0.0.1:$PORT/index.html"
}

# start_pair PLAIN_LIBRARY SHIM_LIBRARY: the two nginx that
# bench/nginx_wrk.sh and bench/nginx_perf.sh compare (PLAIN_LIBRARY empty:
# none, plain nginx), as DIR/nginx-plain and DIR/nginx-shim; sets
# URL_PLAIN, URL_SHIM, PORT_PLAIN, PORT_SHIM and the pids of their worker
# processes (one each), WORKER_PLAIN and WORKER_SHIM.
start_pair() {
  start_nginx nginx-plain "$1"
  URL_PLAIN=$URL
  PORT_PLAIN=$PORT
  start_nginx nginx-shim "$2"
  URL_SHIM=$URL
  PORT_SHIM=$PORT
  WORKER_PLAIN=$(pgrep -P "$(cat "$DIR/nginx-plain/nginx.pid")")
  WORKER_SHIM=$(pgrep -P "$(cat "$DIR/nginx-shim/nginx.pid")")
  [[ -n $WORKER_PLAIN && -n $WORKER_SHIM ]] || { echo "no nginx worker found" >&2; exit 1; }
}
