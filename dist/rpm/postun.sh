# pinwatch %postun: systemd forgets the removed unit. The user stays.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
