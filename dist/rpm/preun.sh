# pinwatch %preun: on erase ($1 = 0), not on upgrade, stop the daemon (a
# clean stop detaches and unpins its programs) and remove whatever pinwatch
# still left in the kernel (`pinwatch unload`).
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop pinwatch.service >/dev/null 2>&1 || :
    fi
    /usr/bin/pinwatch unload -c /etc/pinwatch/pinwatch.toml >/dev/null 2>&1 || :
fi
