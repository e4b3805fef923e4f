import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * The writes mutating messages make: per workspace, the latest changes of
 * each object written, with a version per write. The dataset the resolvers
 * read is not touched. Each workspace holds at most MAX_OBJECTS objects (it
 * starts over past that); a write to a new workspace past MAX_WORKSPACES is
 * refused.
 *
 * One workspace id (--sandbox-workspace) is the warm-up's sandbox: writes
 * to it take exactly the path of any other write, and only the metrics tell
 * them apart (sync_rehearsals_total{form="sandbox"}, not
 * sync_mutations_total). A dry-run write (the message's "dryRun" is true)
 * is validated and versioned but not stored, and is counted as
 * sync_rehearsals_total{form="dry_run"}.
 */
final class Writes {
    static final int MAX_OBJECTS = 10_000;
    static final int MAX_WORKSPACES = 1_000;
    static final java.util.Set<String> FIELDS = java.util.Set.of("completed", "name", "assignee", "due_on", "priority");

    static final class Workspace {
        final Map<Long, Map<String, Object>> objects = new ConcurrentHashMap<>();
        final LongAdder writes = new LongAdder();
    }

    final long sandbox;
    final Map<Long, Workspace> workspaces = new ConcurrentHashMap<>();
    final LongAdder dryRuns = new LongAdder();
    final AtomicLong version = new AtomicLong();

    Writes(long sandbox) { this.sandbox = sandbox; }

    /**
     * Validates changes: known fields only, names at most 200 characters.
     * Returns the change set to apply, or null when it is invalid.
     */
    static Map<String, Object> validate(Object raw) {
        if (!(raw instanceof Map)) return null;
        Map<String, Object> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : ((Map<?, ?>) raw).entrySet()) {
            String k = String.valueOf(e.getKey());
            Object v = e.getValue();
            if (!FIELDS.contains(k)) return null;
            if ("name".equals(k) && (!(v instanceof String) || ((String) v).length() > 200)) return null;
            if ("completed".equals(k) && !(v instanceof Boolean)) return null;
            out.put(k, v);
        }
        return out.isEmpty() ? null : out;
    }

    /**
     * Stores changes to object in workspace ws and returns the write's
     * version, or -1 when ws would be one workspace too many.
     */
    long apply(long ws, long object, Map<String, Object> changes) {
        Workspace w = workspaces.get(ws);
        if (w == null) {
            if (workspaces.size() >= MAX_WORKSPACES) return -1;
            w = workspaces.computeIfAbsent(ws, k -> new Workspace());
        }
        if (w.objects.size() >= MAX_OBJECTS) w.objects.clear();
        w.objects.merge(object, changes, (old, add) -> {
            Map<String, Object> m = new LinkedHashMap<>(old);
            m.putAll(add);
            return m;
        });
        w.writes.increment();
        return version.incrementAndGet();
    }

    /** Counts a dry-run write and returns the version it would have had. */
    long dryRun() {
        dryRuns.increment();
        return version.get() + 1;
    }

    /** Writes stored outside the sandbox: what users would see. */
    long applied() {
        long n = 0;
        for (Map.Entry<Long, Workspace> e : workspaces.entrySet()) {
            if (e.getKey() != sandbox) n += e.getValue().writes.sum();
        }
        return n;
    }

    /** Writes stored in the sandbox. */
    long sandboxed() {
        Workspace w = workspaces.get(sandbox);
        return w == null ? 0 : w.writes.sum();
    }
}
