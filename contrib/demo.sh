#!/bin/sh
# make demo: a demo backend on a free loopback port, a self-signed
# certificate, and tlsoffd in the foreground in front of them on
# https://127.0.0.1:8443/ (DEMO_PORT to change). Ctrl-C stops both.
set -eu
build=${1:-build}
port=${DEMO_PORT:-8443}
dir=$build/demo
mkdir -p "$dir"
if [ ! -f "$dir/cert.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
        -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
fi
"$build/t/helper/backend" -n "the demo backend" > "$dir/backend.port" &
backend=$!
trap 'kill $backend 2>/dev/null' EXIT INT TERM
for _ in 1 2 3 4 5 6 7 8 9 10; do
    grep -q PORT "$dir/backend.port" 2>/dev/null && break
    sleep 0.1
done
bport=$(awk '/PORT/ { print $2 }' "$dir/backend.port")
cat > "$dir/tlsoffd.conf" <<CONF
# Written by contrib/demo.sh
daemon = false;
pidfile = "";
log = { destination = "stderr"; level = "info"; };
workers = { count = 2; };
frontends = ( {
    name = "demo";
    listen = [ "127.0.0.1:$port" ];
    certificates = ( { cert = "$dir/cert.pem"; key = "$dir/key.pem"; } );
    upstream = "demo-backend";
} );
upstreams = ( { name = "demo-backend"; servers = ( { address = "127.0.0.1:$bport"; } ); } );
CONF
cat <<MSG

  tlsoffd demo: https://127.0.0.1:$port/ -> plain HTTP backend on 127.0.0.1:$bport
  Try, from another terminal:
      curl --cacert $dir/cert.pem https://localhost:$port/
      curl -k https://127.0.0.1:$port/bytes/1000000 | wc -c
      openssl s_client -connect 127.0.0.1:$port -tls1_3 </dev/null
  Ctrl-C stops the demo. Configuration: $dir/tlsoffd.conf

MSG
"$build/tlsoffd" -f -c "$dir/tlsoffd.conf"
