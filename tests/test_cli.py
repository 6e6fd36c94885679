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
