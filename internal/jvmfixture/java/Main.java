import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A websocket sync server for preheat's tests: the synthetic sync protocol
 * of internal/corpus over a pure-JDK websocket transport, answered by the
 * resolvers of Resolvers on a fixed worker pool, with Prometheus metrics on a
 * second port.
 *
 * Usage: java Main --port P --metrics-port M [--workers N] [--tasks N]
 *     [--host H] [--sandbox-workspace ID]
 *
 * Port 0 picks a free port. Once both listen it prints "LISTENING P M" on
 * stdout; it exits when its stdin closes, so it never outlives its parent.
 */
public final class Main implements WsServer.Handler {
    private final Dataset data;
    private final Metrics metrics;
    private final Writes writes;
    private final ThreadPoolExecutor pool;

    /** Per-connection protocol state. */
    static final class Session {
        volatile boolean connected;
        volatile int user;
        final AtomicInteger subscriptions = new AtomicInteger();
    }

    Main(Dataset data, Metrics metrics, Writes writes, int workers, int queue) {
        this.data = data;
        this.metrics = metrics;
        this.writes = writes;
        AtomicInteger n = new AtomicInteger();
        this.pool = new ThreadPoolExecutor(workers, workers, 0, TimeUnit.SECONDS, new ArrayBlockingQueue<>(queue), r -> {
            Thread t = new Thread(r, "sync-worker-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    public static void main(String[] args) throws Exception {
        int port = 0, metricsPort = 0, workers = 8, tasks = 1000;
        long sandbox = 999;
        String host = "127.0.0.1";
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) usage("missing value for " + a);
            String v = args[++i];
            switch (a) {
                case "--port": port = Integer.parseInt(v); break;
                case "--metrics-port": metricsPort = Integer.parseInt(v); break;
                case "--workers": workers = Integer.parseInt(v); break;
                case "--tasks": tasks = Integer.parseInt(v); break;
                case "--host": host = v; break;
                case "--sandbox-workspace": sandbox = Long.parseLong(v); break;
                default: usage("unknown flag " + a);
            }
        }
        Writes writes = new Writes(sandbox);
        Metrics metrics = new Metrics(writes);
        Main m = new Main(new Dataset(42, tasks), metrics, writes, workers, 10_000);
        WsServer ws = new WsServer(host, port, m, 1 << 20);
        int mp = metrics.serve(host, metricsPort);
        metrics.startJitter();
        System.out.println("LISTENING " + ws.port() + " " + mp);
        System.out.flush();
        while (System.in.read() >= 0) {
            // Runs until the parent closes stdin or dies.
        }
        ws.close();
        metrics.close();
        System.exit(0);
    }

    private static void usage(String why) {
        System.err.println("jvmfixture: " + why);
        System.err.println("usage: java Main --port P --metrics-port M [--workers N] [--tasks N] [--host H] [--sandbox-workspace ID]");
        System.exit(2);
    }

    @Override
    public void onOpen(WsServer.Conn c) {
        c.attachment = new Session();
        metrics.connections.increment();
        metrics.open.incrementAndGet();
    }

    @Override
    public void onClose(WsServer.Conn c) { metrics.open.decrementAndGet(); }

    @Override
    public void onMessage(WsServer.Conn c, String text, long received) {
        Session s = (Session) c.attachment;
        if (!s.connected) {
            // The connect is handled in order on the reader thread, so that
            // queries sent right behind it find the session open.
            handleConnect(c, s, text, received);
            return;
        }
        try {
            pool.execute(() -> handle(c, s, text, received));
        } catch (RejectedExecutionException e) {
            metrics.error("overloaded");
            c.send("{\"type\":\"error\",\"error\":\"overloaded\"}");
        }
    }

    private void handleConnect(WsServer.Conn c, Session s, String text, long received) {
        Map<?, ?> msg;
        try {
            msg = (Map<?, ?>) Json.parse(text);
        } catch (RuntimeException e) {
            metrics.error("bad_json");
            c.close(1007, "bad json");
            return;
        }
        if (!"connect".equals(msg.get("type"))) {
            metrics.error("not_connected");
            reply(c, received, "{\"type\":\"error\",\"id\":" + idOf(msg) + ",\"error\":\"connect first\"}");
            return;
        }
        s.user = (int) Math.floorMod(msg.get("user") instanceof Long ? (Long) msg.get("user") : 0L, (long) Dataset.USERS);
        s.connected = true;
        reply(c, received, "{\"type\":\"connected\",\"id\":" + idOf(msg) + ",\"session\":\"" + Integer.toHexString(System.identityHashCode(c)) + "\"}");
    }

    private static Object idOf(Map<?, ?> msg) {
        Object id = msg.get("id");
        return id instanceof Long ? id : "null";
    }

    private void reply(WsServer.Conn c, long received, String text) {
        c.send(text);
        metrics.requests.observe((System.nanoTime() - received) / 1e9);
    }

    private void handle(WsServer.Conn c, Session s, String text, long received) {
        Map<?, ?> msg;
        try {
            msg = (Map<?, ?>) Json.parse(text);
        } catch (RuntimeException e) {
            metrics.error("bad_json");
            reply(c, received, "{\"type\":\"error\",\"error\":\"bad json\"}");
            return;
        }
        Object type = msg.get("type");
        Object id = idOf(msg);
        if ("mutate".equals(type) || "write".equals(type) || "delete".equals(type)) {
            handleWrite(c, s, msg, id, received);
            return;
        }
        if ("ping".equals(type)) {
            reply(c, received, "{\"type\":\"pong\",\"id\":" + id + "}");
            return;
        }
        if (!"query".equals(type) || !(msg.get("op") instanceof String)) {
            metrics.error("bad_request");
            reply(c, received, "{\"type\":\"error\",\"id\":" + id + ",\"error\":\"unknown message\"}");
            return;
        }
        String op = (String) msg.get("op");
        Map<?, ?> params = msg.get("params") instanceof Map ? (Map<?, ?>) msg.get("params") : Map.of();
        Map<?, ?> filter = params.get("filter") instanceof Map ? (Map<?, ?>) params.get("filter") : null;
        int limit = (int) Math.max(1, Math.min(500, num(params.get("limit"), 25)));
        String name = Resolvers.route(op, filter != null, limit);
        Resolvers.Resolver r = Resolvers.ALL.get(name);
        if (r == null) {
            metrics.error("unknown_op");
            reply(c, received, "{\"type\":\"error\",\"id\":" + id + ",\"error\":\"unknown op\"}");
            return;
        }
        List<String> fields = new java.util.ArrayList<>();
        if (params.get("fields") instanceof List) {
            for (Object f : (List<?>) params.get("fields")) if (f instanceof String) fields.add((String) f);
        }
        Resolvers.Query q = new Resolvers.Query(
                (int) Math.floorMod(num(params.get("workspace"), 0), (long) Dataset.WORKSPACES),
                num(params.get("object"), 0), fields, limit, filter != null,
                filter != null && Boolean.TRUE.equals(filter.get("completed")),
                filter == null ? s.user : (int) Math.floorMod(num(filter.get("assignee"), 0), (long) Dataset.USERS),
                s.user);
        List<Object> result;
        try {
            result = r.resolve(data, q);
        } catch (RuntimeException e) {
            metrics.error("resolver");
            reply(c, received, "{\"type\":\"error\",\"id\":" + id + ",\"error\":\"internal\"}");
            return;
        }
        metrics.resolved(name);
        StringBuilder b = new StringBuilder(1024);
        b.append("{\"type\":\"result\",\"id\":").append(id).append(",\"op\":");
        Json.quote(b, op);
        b.append(",\"data\":");
        Json.write(b, result);
        if (Boolean.TRUE.equals(msg.get("subscribe"))) {
            b.append(",\"subscription\":").append(s.subscriptions.incrementAndGet());
        }
        b.append(",\"version\":").append(System.identityHashCode(result) & 0xffff).append('}');
        reply(c, received, b.toString());
    }

    /**
     * A mutating message: params.object and params.changes name the write,
     * params.workspace where it lands (the session user's workspace when
     * absent). "dryRun": true validates it without storing it.
     */
    private void handleWrite(WsServer.Conn c, Session s, Map<?, ?> msg, Object id, long received) {
        Map<?, ?> params = msg.get("params") instanceof Map ? (Map<?, ?>) msg.get("params") : Map.of();
        long object = num(params.get("object"), -1);
        Map<String, Object> changes = Writes.validate(params.get("changes"));
        if (object < 0 || changes == null) {
            metrics.error("bad_write");
            reply(c, received, "{\"type\":\"error\",\"id\":" + id + ",\"error\":\"bad write\"}");
            return;
        }
        long ws = num(params.get("workspace"), 1_000_000L + s.user % Dataset.WORKSPACES);
        boolean dryRun = Boolean.TRUE.equals(msg.get("dryRun"));
        long version = dryRun ? writes.dryRun() : writes.apply(ws, object, changes);
        if (version < 0) {
            metrics.error("too_many_workspaces");
            reply(c, received, "{\"type\":\"error\",\"id\":" + id + ",\"error\":\"too many workspaces\"}");
            return;
        }
        reply(c, received, "{\"type\":\"ack\",\"id\":" + id + ",\"version\":" + version + (dryRun ? ",\"dryRun\":true}" : "}"));
    }

    private static long num(Object v, long def) {
        if (v instanceof Long) return (Long) v;
        if (v instanceof Double) return (long) (double) (Double) v;
        return def;
    }
}
