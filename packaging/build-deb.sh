#!/usr/bin/env bash
# make deb: a self-contained Debian package (program and its Python dependencies under
# /usr/lib/kdd-sensor, the shipped model, the systemd unit, sysusers/tmpfiles/logrotate
# snippets and /etc/kdd-sensor/kdd-sensor.yaml). Output: build/kdd-sensor_VERSION_ARCH.deb
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VERSION=$($PY -c "import tomllib; print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
ARCH=$(dpkg --print-architecture)
PYVER=$($PY -c "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')")
STAGE=build/deb/kdd-sensor_${VERSION}_${ARCH}
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN" "$STAGE/usr/bin" "$STAGE/usr/lib/kdd-sensor" "$STAGE/lib/systemd/system" \
    "$STAGE/usr/lib/sysusers.d" "$STAGE/usr/lib/tmpfiles.d" "$STAGE/etc/logrotate.d" \
    "$STAGE/etc/kdd-sensor" "$STAGE/usr/share/doc/kdd-sensor"

$PY -m pip install -q --no-compile --target "$STAGE/usr/lib/kdd-sensor/site-packages" .
rm -rf "$STAGE/usr/lib/kdd-sensor/site-packages/bin"
cat > "$STAGE/usr/bin/kdd-sensor" <<LAUNCH
#!/usr/bin/python3
import sys
sys.path.insert(0, "/usr/lib/kdd-sensor/site-packages")
from sensor.cli import main
main()
LAUNCH
chmod 0755 "$STAGE/usr/bin/kdd-sensor"

install -m 0644 packaging/kdd-sensor@.service "$STAGE/lib/systemd/system/"
install -m 0644 packaging/kdd-sensor.sysusers "$STAGE/usr/lib/sysusers.d/kdd-sensor.conf"
install -m 0644 packaging/kdd-sensor.tmpfiles "$STAGE/usr/lib/tmpfiles.d/kdd-sensor.conf"
install -m 0644 packaging/kdd-sensor.logrotate "$STAGE/etc/logrotate.d/kdd-sensor"
# The service's configuration: the documented defaults, with EVE to the log directory and
# syslog to the local socket.
sed -e '/^  eve:/,/path:/{s/enabled: false/enabled: true/;s|path: "-" .*|path: /var/log/kdd-sensor/eve.json|}' \
    -e '/^  syslog:/,/target:/{s/enabled: false/enabled: true/}' \
    -e 's/^user: ""  .*/user: kdd-sensor         # when started as root: switch to this user once capture is open/' \
    packaging/kdd-sensor.yaml > "$STAGE/etc/kdd-sensor/kdd-sensor.yaml"
install -m 0644 README.md "$STAGE/usr/share/doc/kdd-sensor/README.md"
install -m 0644 models/REPORT.md "$STAGE/usr/share/doc/kdd-sensor/REPORT.md"

SIZE=$(du -sk "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: kdd-sensor
Version: $VERSION
Architecture: $ARCH
Maintainer: kdd-sensor developers <kdd-sensor@localhost>
Installed-Size: $SIZE
Depends: python3 (>= $PYVER), python3 (<< ${PYVER%.*}.$(( ${PYVER#*.} + 1 ))), libpcap0.8, systemd
Recommends: rsyslog, tshark
Section: net
Priority: optional
Homepage: https://localhost/kdd-sensor
Description: network intrusion detection sensor (NSL-KDD features, int8 CNN-LSTM)
 Rebuilds TCP/UDP/ICMP connections from a span port or pcap files, computes the 41
 NSL-KDD features of each, classifies them with an int8 CNN-LSTM (LiteRT) and sends
 DoS/Probe/R2L/U2R alerts to EVE JSON, syslog (RFC 5424), CEF/LEEF and journald.
CONTROL
echo "/etc/kdd-sensor/kdd-sensor.yaml" > "$STAGE/DEBIAN/conffiles"
echo "/etc/logrotate.d/kdd-sensor" >> "$STAGE/DEBIAN/conffiles"
cat > "$STAGE/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    systemd-sysusers kdd-sensor.conf >/dev/null 2>&1 || \
        getent passwd kdd-sensor >/dev/null || \
        useradd --system --home-dir /var/lib/kdd-sensor --shell /usr/sbin/nologin kdd-sensor
    systemd-tmpfiles --create kdd-sensor.conf >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
POSTINST
cat > "$STAGE/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop 'kdd-sensor@*.service' >/dev/null 2>&1 || true
fi
PRERM
cat > "$STAGE/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
POSTRM
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"
dpkg-deb --build --root-owner-group -Zxz "$STAGE" build/ >/dev/null
echo "build/kdd-sensor_${VERSION}_${ARCH}.deb"
