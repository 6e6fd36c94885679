"""The command-line helpers of ``tfvideo.cli``: the filter of TensorFlow's native log lines."""


def test_native_log_filter_keeps_real_errors_and_drops_known_noise():
    from tfvideo.cli import _is_noise

    noise = [b"I0000 00:00:1796524172.600878    4386 cpu_feature_guard.cc:227] This TensorFlow binary is optimized",
             b"E0000 00:00:1796524737.479061    8775 util.cc:131] oneDNN supports DT_HALF only on platforms with "
             b"AVX-512. Falling back to the default Eigen-based implementation if present.",
             b"E0000 00:00:1796524741.058287    8775 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: "
             b"Mutation::Apply error: fanout 'a/LeakyReluGrad' exist for missing node 'b/BiasAdd'.",
             b"E0000 00:00:1796525693.145665   12882 cuda_platform.cc:52] failed call to cuInit: INTERNAL"]
    kept = [b"E0000 00:00:1796524741.058287    8775 meta_optimizer.cc:967] layout failed: INVALID_ARGUMENT: x",
            b"E0000 00:00:1796524741.058287    8775 op_kernel.cc:1] OOM when allocating tensor",
            b"Traceback (most recent call last):"]
    assert all(_is_noise(line) for line in noise)
    assert not any(_is_noise(line) for line in kept)


def test_native_log_filter_passes_progress_bar_redraws_at_once():
    """A progress bar redraws with "\\r" and writes no newline until it closes: the filter must forward each
    redraw when it arrives (a line-buffered filter showed long steps' bars only at their end), and still drop
    noise lines."""
    import os
    import select
    import subprocess
    import sys
    import time

    script = ("import os, sys\n"
              "from tfvideo.cli import quiet_native_logs\n"
              "quiet_native_logs()\n"
              "os.write(2, b'I0000 00:00:1796524172.600878    4386 cpu_feature_guard.cc:227] noise\\n')\n"
              "os.write(2, b'shards:  50%|#####     | 1/2\\r')\n"
              "sys.stdin.readline()\n"                       # the bar stays open until the test has seen it
              "os.write(2, b'shards: 100%|##########| 2/2\\n')\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    seen, deadline = b"", time.time() + 30
    try:
        while b"50%" not in seen and time.time() < deadline:
            ready, _, _ = select.select([p.stderr], [], [], 1.0)
            if ready:
                chunk = os.read(p.stderr.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
        assert b"shards:  50%|#####     | 1/2\r" in seen, seen    # before any newline was written
    finally:
        p.stdin.write(b"\n")
        p.stdin.flush()
        rest = p.communicate(timeout=60)[1]
    out = seen + rest
    assert p.returncode == 0, out
    assert b"noise" not in out and out.endswith(b"shards: 100%|##########| 2/2\n"), out
