# Sourced by the FUSE tests: VDKFS_URING=on or off (default) picks vdkfs's
# transport (-o uring=).  With on, as root, the kernel's fuse.enable_uring is
# switched on for the run; uring_restore (call it from the EXIT trap) puts
# it back.  uring_expected says which transport a mount must then use.
uring=${VDKFS_URING:-off}
uring_knob=/sys/module/fuse/parameters/enable_uring
uring_knob_was=
if [ "$uring" = on ] && [ -w "$uring_knob" ]; then
    uring_knob_was=$(cat "$uring_knob")
    echo Y >"$uring_knob"
fi
uring_restore() {
    if [ -n "$uring_knob_was" ]; then echo "$uring_knob_was" >"$uring_knob" || true; fi
}
uring_expected() {
    if [ "$uring" = on ] && grep -q Y "$uring_knob" 2>/dev/null; then echo io_uring; else echo /dev/fuse; fi
}
# uring_check PID: fail unless the daemon uses the expected transport (its
# queues' io_uring descriptors exist once FUSE_INIT completed)
uring_check() {
    local rings
    rings=$(ls -l "/proc/$1/fd" 2>/dev/null | grep -c 'io_uring' || true)
    if [ "$(uring_expected)" = io_uring ]; then
        [ "$rings" -gt 0 ] || fail "fuse.enable_uring is on but vdkfs did not set up io_uring queues"
    else
        [ "$rings" = 0 ] || fail "uring=$uring but vdkfs has $rings io_uring descriptors"
    fi
    echo "transport: $(uring_expected) ($rings io_uring queues)"
}
