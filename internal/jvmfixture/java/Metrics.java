import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * The server's Prometheus text metrics, served on GET /metrics of their own
 * port: JIT compile time, scheduler jitter, request latency, mutations and
 * per-resolver calls.
 */
final class Metrics {
    /** A classic Prometheus histogram with le buckets. */
    static final class Histogram {
        final String name, help;
        final double[] bounds;
        final long[] counts;
        double sum;
        long count;

        Histogram(String name, String help, double[] bounds) {
            this.name = name;
            this.help = help;
            this.bounds = bounds;
            this.counts = new long[bounds.length + 1];
        }

        synchronized void observe(double v) {
            int i = bounds.length;
            for (int k = 0; k < bounds.length; k++) {
                if (v <= bounds[k]) { i = k; break; }
            }
            counts[i]++;
            sum += v;
            count++;
        }

        synchronized void write(StringBuilder b) {
            b.append("# HELP ").append(name).append(' ').append(help).append('\n');
            b.append("# TYPE ").append(name).append(" histogram\n");
            long cum = 0;
            for (int i = 0; i < counts.length; i++) {
                cum += counts[i];
                String le = i < bounds.length ? Double.toString(bounds[i]) : "+Inf";
                b.append(name).append("_bucket{le=\"").append(le).append("\"} ").append(cum).append('\n');
            }
            b.append(name).append("_sum ").append(sum).append('\n');
            b.append(name).append("_count ").append(count).append('\n');
        }
    }

    static final double[] JITTER_BUCKETS = {0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
    static final double[] LATENCY_BUCKETS = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

    final Histogram jitter = new Histogram("jvm_scheduler_jitter_seconds",
            "Lateness of a 10ms periodic task against each tick's due time.", JITTER_BUCKETS);
    final Histogram requests = new Histogram("sync_request_duration_seconds",
            "Time from a request's last frame read to its answer written, queueing included.", LATENCY_BUCKETS);
    private final Writes writes;
    final LongAdder connections = new LongAdder();
    final AtomicLong open = new AtomicLong();
    final Map<String, LongAdder> errors = new ConcurrentHashMap<>();
    final Map<String, LongAdder> resolverCalls = new ConcurrentHashMap<>();
    final CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
    private final ScheduledExecutorService ticker = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "jitter-ticker");
        t.setDaemon(true);
        return t;
    });
    private HttpServer http;

    Metrics(Writes writes) { this.writes = writes; }

    void error(String kind) { errors.computeIfAbsent(kind, k -> new LongAdder()).increment(); }

    void resolved(String resolver) { resolverCalls.computeIfAbsent(resolver, k -> new LongAdder()).increment(); }

    /** Starts the 10ms jitter task: each tick records how late it ran against its due time. */
    void startJitter() {
        final long period = TimeUnit.MILLISECONDS.toNanos(10);
        final long start = System.nanoTime() + period;
        final long[] tick = {0};
        ticker.scheduleAtFixedRate(() -> {
            long due = start + tick[0]++ * period;
            jitter.observe(Math.max(0, System.nanoTime() - due) / 1e9);
        }, 10, 10, TimeUnit.MILLISECONDS);
    }

    int serve(String host, int port) throws IOException {
        http = HttpServer.create(new InetSocketAddress(host, port), 64);
        http.setExecutor(Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "metrics-http");
            t.setDaemon(true);
            return t;
        }));
        http.createContext("/metrics", ex -> {
            byte[] body = "method not allowed\n".getBytes(StandardCharsets.UTF_8);
            int status = 405;
            if ("GET".equals(ex.getRequestMethod())) {
                body = render().getBytes(StandardCharsets.UTF_8);
                status = 200;
                ex.getResponseHeaders().set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
            }
            ex.sendResponseHeaders(status, body.length);
            try (OutputStream o = ex.getResponseBody()) { o.write(body); }
        });
        http.start();
        return http.getAddress().getPort();
    }

    String render() {
        StringBuilder b = new StringBuilder(4096);
        if (jit != null && jit.isCompilationTimeMonitoringSupported()) {
            b.append("# HELP jvm_compilation_time_ms_total Total JIT compile time (CompilationMXBean).\n");
            b.append("# TYPE jvm_compilation_time_ms_total counter\n");
            b.append("jvm_compilation_time_ms_total ").append(jit.getTotalCompilationTime()).append('\n');
        }
        jitter.write(b);
        requests.write(b);
        b.append("# HELP sync_mutations_total Writes stored where users see them (outside the sandbox workspace).\n# TYPE sync_mutations_total counter\n");
        b.append("sync_mutations_total ").append(writes.applied()).append('\n');
        b.append("# HELP sync_rehearsals_total Writes that left nothing users see: stored in the sandbox workspace, or dry runs.\n# TYPE sync_rehearsals_total counter\n");
        b.append("sync_rehearsals_total{form=\"sandbox\"} ").append(writes.sandboxed()).append('\n');
        b.append("sync_rehearsals_total{form=\"dry_run\"} ").append(writes.dryRuns.sum()).append('\n');
        b.append("# HELP sync_connections_total Websocket connections accepted.\n# TYPE sync_connections_total counter\n");
        b.append("sync_connections_total ").append(connections.sum()).append('\n');
        b.append("# HELP sync_connections_open Websocket connections open.\n# TYPE sync_connections_open gauge\n");
        b.append("sync_connections_open ").append(open.get()).append('\n');
        b.append("# HELP sync_errors_total Requests answered with an error, by kind.\n# TYPE sync_errors_total counter\n");
        for (Map.Entry<String, LongAdder> e : new TreeMap<>(errors).entrySet()) {
            b.append("sync_errors_total{kind=\"").append(e.getKey()).append("\"} ").append(e.getValue().sum()).append('\n');
        }
        b.append("# HELP sync_resolver_calls_total Queries answered, by resolver.\n# TYPE sync_resolver_calls_total counter\n");
        for (Map.Entry<String, LongAdder> e : new TreeMap<>(resolverCalls).entrySet()) {
            b.append("sync_resolver_calls_total{resolver=\"").append(e.getKey()).append("\"} ").append(e.getValue().sum()).append('\n');
        }
        return b.toString();
    }

    void close() {
        ticker.shutdownNow();
        if (http != null) http.stop(0);
    }
}
