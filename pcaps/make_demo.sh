#!/usr/bin/env bash
# pcaps/demo.pcap for `make run`: normal web, DNS, SMTP and FTP sessions, then an nmap scan,
# an ICMP sweep, a land packet, teardrop fragments and the first 3,000 packets of a SYN flood,
# all from realtools/ (real tools, real servers). Needs editcap and mergecap (wireshark-common).
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
editcap -r realtools/synflood.pcap "$tmp/flood.pcap" 1-3000
mergecap -F pcap -w demo.pcap realtools/normal_web.pcap realtools/normal_dns.pcap \
    realtools/normal_smtp.pcap realtools/normal_ftp.pcap realtools/portscan.pcap \
    realtools/icmpsweep.pcap realtools/land.pcap realtools/teardrop.pcap "$tmp/flood.pcap"
capinfos -c demo.pcap | tail -1
