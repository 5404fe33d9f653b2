# pinwatch %postun: systemd forgets the removed unit, or, on upgrade
# ($1 >= 1), a running daemon hands over to the new binary (the unit's
# ExecStop on a restart: no record lost, no hook detached). The user stays.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart pinwatch.service >/dev/null 2>&1 || :
    fi
fi
