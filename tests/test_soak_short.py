"""A 10-second run of the soak test (tests/soak.py) inside the normal suite: Envoy at
`--concurrency 2`, 64 keep-alive connections, every response checked, Envoy's RSS flat, no wasm
VM failure, the filter's counters equal to the client's counts. `make soak` runs the same for 60 s."""
import soak


def test_short_soak(tmp_path):
    result = soak.run(seconds=10, connections=64, client_procs=2, sample_interval=1.0, warmup=2.0,
                      workdir=tmp_path / "soak", log=lambda *_: None)
    print(result.rss_line())
    print(result.summary())
    assert result.violations == [], "\n".join(result.violations) + "\n" + result.summary()
    assert result.requests >= 1000, result.summary()
    assert all(n > 0 for n in result.per_class.values()), result.summary()
    assert sum(result.wrong.values()) == 0 and result.status_5xx == 0 and result.errors == 0
