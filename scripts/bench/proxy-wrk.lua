-- wrk script for scripts/bench-proxy.sh: one machine-readable line with the raw counters.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(("BENCHRESULT us=%d requests=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d\n"):format(
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
end
