#!/usr/bin/env bash
# Makes a county CA and certificates for MQTT over TLS (ECDSA P-256, PEM, PKCS#8 keys):
#   deploy/tls/make-certs.sh DIR BROKER_NAME [CLIENT_NAME...]
# DIR/ca.pem, ca.key       the CA (made once; kept if present): give ca.pem to every box and
#                          the center (mqtt.tls_ca, --broker-ca); keep ca.key offline.
# DIR/server.pem, .key     the broker's certificate for BROKER_NAME (also localhost, 127.0.0.1).
# DIR/NAME.pem, NAME.key   a client certificate per agent id (and xl-center) for brokers that
#                          require one (mqtt.tls_client_cert / tls_client_key).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 DIR BROKER_NAME [CLIENT_NAME...]" >&2
    exit 2
fi
dir=$1; broker=$2; shift 2
mkdir -p "$dir"
cd "$dir"
umask 077
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
if [ ! -f ca.pem ]; then
    key ca.key
    openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=xueliang county CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.pem
fi
sign() { # name subject-alt-names extended-key-usage
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n%s' "$3" "$2" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
case $broker in
    *[!0-9.]*) san="DNS:$broker" ;;
    *) san="IP:$broker" ;;
esac
sign server "subjectAltName=$san,DNS:localhost,IP:127.0.0.1" serverAuth
for client in "$@"; do
    sign "$client" "" clientAuth
done
chmod 644 ./*.pem
echo "certificates in $PWD: ca.pem, server.pem/.key${*:+, and for }$*"
