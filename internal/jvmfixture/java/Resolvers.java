import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/**
 * The query resolvers: one method per (op, variant), each with its own
 * filtering, grouping, sorting or aggregation over the dataset, so that the
 * JIT sees distinct methods to profile and compile. A query's variant is
 * "filtered" when its params hold a filter, "paged" for the most popular ops
 * when it asks for 75 or more rows without a filter, and plain otherwise.
 */
final class Resolvers {
    record Query(int ws, long object, List<String> fields, int limit, boolean filtered,
                 boolean completed, int assignee, int user) { }

    interface Resolver {
        List<Object> resolve(Dataset d, Query q);
    }

    static final Map<String, Resolver> ALL = new LinkedHashMap<>();

    static {
        ALL.put("tasks.list", Resolvers::tasksList);
        ALL.put("tasks.list.filtered", Resolvers::tasksListFiltered);
        ALL.put("tasks.list.paged", Resolvers::tasksListPaged);
        ALL.put("tasks.get", Resolvers::tasksGet);
        ALL.put("tasks.get.filtered", Resolvers::tasksGetFiltered);
        ALL.put("tasks.get.paged", Resolvers::tasksGetPaged);
        ALL.put("projects.get", Resolvers::projectsGet);
        ALL.put("projects.get.filtered", Resolvers::projectsGetFiltered);
        ALL.put("projects.get.paged", Resolvers::projectsGetPaged);
        ALL.put("user.me", Resolvers::userMe);
        ALL.put("user.me.filtered", Resolvers::userMeFiltered);
        ALL.put("user.me.paged", Resolvers::userMePaged);
        ALL.put("inbox.list", Resolvers::inboxList);
        ALL.put("inbox.list.filtered", Resolvers::inboxListFiltered);
        ALL.put("inbox.list.paged", Resolvers::inboxListPaged);
        ALL.put("search.typeahead", Resolvers::searchTypeahead);
        ALL.put("search.typeahead.filtered", Resolvers::searchTypeaheadFiltered);
        ALL.put("search.typeahead.paged", Resolvers::searchTypeaheadPaged);
        ALL.put("tasks.subtasks", Resolvers::tasksSubtasks);
        ALL.put("tasks.subtasks.filtered", Resolvers::tasksSubtasksFiltered);
        ALL.put("projects.sections", Resolvers::projectsSections);
        ALL.put("projects.sections.filtered", Resolvers::projectsSectionsFiltered);
        ALL.put("comments.list", Resolvers::commentsList);
        ALL.put("comments.list.filtered", Resolvers::commentsListFiltered);
        ALL.put("teams.members", Resolvers::teamsMembers);
        ALL.put("teams.members.filtered", Resolvers::teamsMembersFiltered);
        ALL.put("portfolios.items", Resolvers::portfoliosItems);
        ALL.put("portfolios.items.filtered", Resolvers::portfoliosItemsFiltered);
        ALL.put("goals.progress", Resolvers::goalsProgress);
        ALL.put("goals.progress.filtered", Resolvers::goalsProgressFiltered);
        ALL.put("tags.list", Resolvers::tagsList);
        ALL.put("tags.list.filtered", Resolvers::tagsListFiltered);
        ALL.put("attachments.list", Resolvers::attachmentsList);
        ALL.put("attachments.list.filtered", Resolvers::attachmentsListFiltered);
        ALL.put("workspaces.get", Resolvers::workspacesGet);
        ALL.put("workspaces.get.filtered", Resolvers::workspacesGetFiltered);
        ALL.put("reports.burnup", Resolvers::reportsBurnup);
        ALL.put("reports.burnup.filtered", Resolvers::reportsBurnupFiltered);
        ALL.put("timeline.range", Resolvers::timelineRange);
        ALL.put("timeline.range.filtered", Resolvers::timelineRangeFiltered);
        ALL.put("rules.list", Resolvers::rulesList);
        ALL.put("rules.list.filtered", Resolvers::rulesListFiltered);
        ALL.put("forms.get", Resolvers::formsGet);
        ALL.put("forms.get.filtered", Resolvers::formsGetFiltered);
        ALL.put("audit.events", Resolvers::auditEvents);
        ALL.put("audit.events.filtered", Resolvers::auditEventsFiltered);
    }

    /** Returns the resolver name for an op and its params' variant. */
    static String route(String op, boolean filtered, int limit) {
        if (filtered) return op + ".filtered";
        if (limit >= 75 && ALL.containsKey(op + ".paged")) return op + ".paged";
        return op;
    }

    // ---- shared views (the framework path every resolver ends in) ----

    static Map<String, Object> taskView(Dataset d, Dataset.Task t, List<String> fields) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("gid", Long.toString(t.gid()));
        m.put("resource_type", "task");
        for (String f : fields) {
            switch (f) {
                case "name": m.put("name", t.name()); break;
                case "completed": m.put("completed", t.completed()); break;
                case "assignee": m.put("assignee", userRef(d.users[t.assignee()])); break;
                case "due_on": m.put("due_on", dueOn(t.due())); break;
                case "notes": m.put("notes", t.name() + " — see the spec"); break;
                case "projects": m.put("projects", List.of(Long.toString(d.projects[t.ws()][t.project()].gid()))); break;
                case "tags": m.put("tags", t.tags()); break;
                case "num_subtasks": m.put("num_subtasks", t.subtasks()); break;
                case "parent": m.put("parent", t.parent() < 0 ? null : Long.toString(d.tasks[t.ws()][t.parent()].gid())); break;
                case "custom_fields": m.put("custom_fields", List.of(Map.of("type", "enum", "value", PRIORITIES[t.priority()]))); break;
                default: m.put(f, null);
            }
        }
        return m;
    }

    static final String[] PRIORITIES = {"Low", "Medium", "High", "Urgent"};

    static Map<String, Object> userRef(Dataset.User u) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("gid", Long.toString(u.gid()));
        m.put("name", u.name());
        return m;
    }

    static String dueOn(int day) {
        int month = 10 + day / 30;
        int dom = 1 + day % 28;
        return "2026-" + month + "-" + (dom < 10 ? "0" + dom : Integer.toString(dom));
    }

    static Dataset.Task pick(Dataset d, Query q) {
        Dataset.Task[] ts = d.tasks[q.ws()];
        return ts[(int) Math.floorMod(q.object(), (long) ts.length)];
    }

    static Dataset.Project pickProject(Dataset d, Query q) {
        Dataset.Project[] ps = d.projects[q.ws()];
        return ps[(int) Math.floorMod(q.object(), (long) ps.length)];
    }

    static List<Object> views(Dataset d, List<Dataset.Task> ts, Query q) {
        List<Object> out = new ArrayList<>(Math.min(ts.size(), q.limit()));
        for (int i = 0; i < ts.size() && i < q.limit(); i++) out.add(taskView(d, ts.get(i), q.fields()));
        return out;
    }

    // ---- tasks ----

    static List<Object> tasksList(Dataset d, Query q) {
        List<Dataset.Task> ts = new ArrayList<>();
        for (Dataset.Task t : d.tasks[q.ws()]) if (t.parent() < 0) ts.add(t);
        ts.sort(Comparator.comparingInt(Dataset.Task::due).thenComparing(Comparator.comparingInt(Dataset.Task::priority).reversed()));
        return views(d, ts, q);
    }

    static List<Object> tasksListFiltered(Dataset d, Query q) {
        List<Dataset.Task> ts = Arrays.stream(d.tasks[q.ws()])
                .filter(t -> t.completed() == q.completed())
                .filter(t -> t.assignee() % 10 == q.assignee() % 10)
                .sorted(Comparator.comparingLong(Dataset.Task::modified).reversed())
                .collect(Collectors.toList());
        return views(d, ts, q);
    }

    static List<Object> tasksListPaged(Dataset d, Query q) {
        Dataset.Task[] all = d.tasks[q.ws()].clone();
        Arrays.sort(all, (a, b) -> {
            int c = a.name().compareTo(b.name());
            return c != 0 ? c : Long.compare(a.gid(), b.gid());
        });
        int page = (int) Math.floorMod(q.object(), 4L);
        int from = Math.min(all.length, page * q.limit());
        List<Object> out = views(d, Arrays.asList(all).subList(from, all.length), q);
        out.add(Map.of("next_page", page + 1, "total", all.length));
        return out;
    }

    static List<Object> tasksGet(Dataset d, Query q) {
        Dataset.Task t = pick(d, q);
        int idx = (int) (t.gid() % 1_000_000L);
        int children = 0;
        double est = t.estimate();
        for (Dataset.Task c : d.tasks[q.ws()]) {
            if (c.parent() == idx) { children++; est += c.estimate(); }
        }
        Map<String, Object> v = taskView(d, t, q.fields());
        v.put("children", children);
        v.put("estimate_total", est);
        return List.of(v);
    }

    static List<Object> tasksGetFiltered(Dataset d, Query q) {
        Dataset.Task t = pick(d, q);
        int idx = (int) (t.gid() % 1_000_000L);
        Set<Integer> followers = new HashSet<>();
        followers.add(t.assignee());
        for (Dataset.Event e : d.events[q.ws()]) if (e.task() == idx) followers.add(e.actor());
        boolean visible = followers.contains(q.assignee()) || t.completed() == q.completed();
        Map<String, Object> v = taskView(d, t, q.fields());
        v.put("followers", followers.stream().sorted().limit(10).map(u -> userRef(d.users[u])).collect(Collectors.toList()));
        v.put("visible", visible);
        return List.of(v);
    }

    static List<Object> tasksGetPaged(Dataset d, Query q) {
        Dataset.Task t = pick(d, q);
        List<Dataset.Task> siblings = new ArrayList<>();
        for (Dataset.Task s : d.tasks[q.ws()]) {
            if (s.project() == t.project() && s.section() == t.section() && s != t) siblings.add(s);
        }
        siblings.sort((a, b) -> b.priority() != a.priority() ? b.priority() - a.priority() : a.due() - b.due());
        List<Object> out = new ArrayList<>();
        out.add(taskView(d, t, q.fields()));
        out.addAll(views(d, siblings, q));
        return out;
    }

    static List<Object> tasksSubtasks(Dataset d, Query q) {
        Dataset.Task[] ts = d.tasks[q.ws()];
        Map<Integer, List<Integer>> children = new HashMap<>();
        for (int i = 0; i < ts.length; i++) {
            if (ts[i].parent() >= 0) children.computeIfAbsent(ts[i].parent(), k -> new ArrayList<>()).add(i);
        }
        int root = (int) Math.floorMod(q.object(), (long) ts.length);
        while (!children.containsKey(root) && root > 0) root--;
        List<Object> out = new ArrayList<>();
        for (int c : children.getOrDefault(root, List.of())) {
            Map<String, Object> v = taskView(d, ts[c], q.fields());
            v.put("subtasks", children.getOrDefault(c, List.of()).size());
            out.add(v);
        }
        return out;
    }

    static List<Object> tasksSubtasksFiltered(Dataset d, Query q) {
        Dataset.Task[] ts = d.tasks[q.ws()];
        double open = 0, done = 0;
        int n = 0;
        List<Object> out = new ArrayList<>();
        for (Dataset.Task t : ts) {
            if (t.parent() < 0) continue;
            if (t.completed()) done += t.estimate(); else open += t.estimate();
            if (t.completed() == q.completed() && n++ < q.limit()) out.add(taskView(d, t, q.fields()));
        }
        out.add(Map.of("estimate_open", open, "estimate_done", done));
        return out;
    }

    // ---- projects ----

    static List<Object> projectsGet(Dataset d, Query q) {
        Dataset.Project p = pickProject(d, q);
        int pi = (int) (p.gid() % 1000);
        int total = 0, completed = 0, overdue = 0;
        for (Dataset.Task t : d.tasks[q.ws()]) {
            if (t.project() != pi) continue;
            total++;
            if (t.completed()) completed++;
            else if (t.due() < 30) overdue++;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("gid", Long.toString(p.gid()));
        m.put("name", p.name());
        m.put("owner", userRef(d.users[p.owner()]));
        m.put("stats", Map.of("total", total, "completed", completed, "overdue", overdue));
        return List.of(m);
    }

    static List<Object> projectsGetFiltered(Dataset d, Query q) {
        Dataset.Project p = pickProject(d, q);
        int pi = (int) (p.gid() % 1000);
        TreeMap<Integer, int[]> bySection = new TreeMap<>();
        for (Dataset.Task t : d.tasks[q.ws()]) {
            if (t.project() == pi && t.completed() == q.completed()) {
                int[] c = bySection.computeIfAbsent(t.section(), k -> new int[2]);
                c[0]++;
                if (t.assignee() % 7 == q.assignee() % 7) c[1]++;
            }
        }
        List<Object> out = new ArrayList<>();
        bySection.forEach((s, c) -> out.add(Map.of("section", s, "tasks", c[0], "mine", c[1])));
        return out;
    }

    static List<Object> projectsGetPaged(Dataset d, Query q) {
        Dataset.Project p = pickProject(d, q);
        int pi = (int) (p.gid() % 1000);
        List<Dataset.Task> ts = new ArrayList<>();
        for (Dataset.Task t : d.tasks[q.ws()]) if (t.project() == pi) ts.add(t);
        ts.sort(Comparator.comparing(Dataset.Task::completed).thenComparingInt(Dataset.Task::due).thenComparingLong(Dataset.Task::gid));
        return views(d, ts, q);
    }

    static List<Object> projectsSections(Dataset d, Query q) {
        Dataset.Project p = pickProject(d, q);
        int pi = (int) (p.gid() % 1000);
        int[] counts = new int[6];
        double[] est = new double[6];
        for (Dataset.Task t : d.tasks[q.ws()]) {
            if (t.project() == pi) { counts[t.section()]++; est[t.section()] += t.estimate(); }
        }
        List<Object> out = new ArrayList<>();
        for (int s = 0; s < 6; s++) {
            out.add(Map.of("section", "Section " + (s + 1), "count", counts[s], "estimate", est[s]));
        }
        return out;
    }

    static List<Object> projectsSectionsFiltered(Dataset d, Query q) {
        Map<Integer, Long> counts = Arrays.stream(d.tasks[q.ws()])
                .filter(t -> t.completed() == q.completed())
                .collect(Collectors.groupingBy(t -> t.project() * 10 + t.section(), Collectors.counting()));
        return counts.entrySet().stream()
                .sorted(Map.Entry.<Integer, Long>comparingByValue().reversed())
                .limit(q.limit())
                .map(e -> (Object) Map.of("project", e.getKey() / 10, "section", e.getKey() % 10, "count", e.getValue()))
                .collect(Collectors.toList());
    }

    static List<Object> portfoliosItems(Dataset d, Query q) {
        int portfolio = (int) Math.floorMod(q.object(), 3L);
        List<Object> out = new ArrayList<>();
        for (Dataset.Project p : d.projects[q.ws()]) {
            if (p.gid() % 3 != portfolio) continue;
            int pi = (int) (p.gid() % 1000);
            int total = 0, done = 0;
            for (Dataset.Task t : d.tasks[q.ws()]) {
                if (t.project() == pi) { total++; if (t.completed()) done++; }
            }
            out.add(Map.of("project", p.name(), "progress", total == 0 ? 0.0 : (double) done / total, "color", p.color()));
        }
        return out;
    }

    static List<Object> portfoliosItemsFiltered(Dataset d, Query q) {
        Dataset.Project[] ps = d.projects[q.ws()];
        double[] progress = new double[ps.length];
        int[] totals = new int[ps.length];
        for (Dataset.Task t : d.tasks[q.ws()]) {
            totals[t.project()]++;
            if (t.completed() == q.completed()) progress[t.project()] += t.estimate();
        }
        return IntStream.range(0, ps.length)
                .filter(i -> !ps[i].archived())
                .boxed()
                .sorted(Comparator.comparingDouble((Integer i) -> progress[i] / Math.max(1, totals[i])).reversed())
                .map(i -> (Object) Map.of("project", ps[i].name(), "score", progress[i] / Math.max(1, totals[i]), "owner", d.users[ps[i].owner()].name()))
                .collect(Collectors.toList());
    }

    static List<Object> workspacesGet(Dataset d, Query q) {
        Dataset.Task[] ts = d.tasks[q.ws()];
        int[] due = new int[ts.length];
        for (int i = 0; i < ts.length; i++) due[i] = ts[i].due();
        Arrays.sort(due);
        Set<Integer> people = new HashSet<>();
        for (Dataset.Task t : ts) people.add(t.assignee());
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("gid", Long.toString(1_000_000 + q.ws()));
        m.put("tasks", ts.length);
        m.put("projects", d.projects[q.ws()].length);
        m.put("members", people.size());
        m.put("median_due", dueOn(due[due.length / 2]));
        return List.of(m);
    }

    static List<Object> workspacesGetFiltered(Dataset d, Query q) {
        Dataset.Project[] ps = d.projects[q.ws()];
        int[] total = new int[ps.length];
        int[] match = new int[ps.length];
        for (Dataset.Task t : d.tasks[q.ws()]) {
            total[t.project()]++;
            if (t.completed() == q.completed()) match[t.project()]++;
        }
        PriorityQueue<int[]> top = new PriorityQueue<>((a, b) -> Integer.compare(a[1] * 1000 / Math.max(1, a[2]), b[1] * 1000 / Math.max(1, b[2])));
        for (int i = 0; i < ps.length; i++) {
            top.add(new int[] {i, match[i], total[i]});
            if (top.size() > 5) top.poll();
        }
        List<Object> out = new ArrayList<>();
        while (!top.isEmpty()) {
            int[] e = top.poll();
            out.add(Map.of("project", ps[e[0]].name(), "ratio", e[2] == 0 ? 0.0 : (double) e[1] / e[2]));
        }
        return out;
    }

    // ---- people ----

    static List<Object> userMe(Dataset d, Query q) {
        Dataset.User u = d.users[q.user()];
        int[] byPriority = new int[4];
        int open = 0;
        for (Dataset.Task[] ws : d.tasks) {
            for (Dataset.Task t : ws) {
                if (t.assignee() == q.user() && !t.completed()) { open++; byPriority[t.priority()]++; }
            }
        }
        Map<String, Object> m = userRef(u);
        m.put("email", u.email());
        m.put("open_tasks", open);
        m.put("by_priority", byPriority);
        return List.of(m);
    }

    static List<Object> userMeFiltered(Dataset d, Query q) {
        List<Dataset.Task> soon = new ArrayList<>();
        for (Dataset.Task t : d.tasks[q.ws()]) {
            if (!t.completed() && t.due() < 14 && (t.assignee() % 5 == q.assignee() % 5)) soon.add(t);
        }
        soon.sort(Comparator.comparingInt(Dataset.Task::due).thenComparing(Dataset.Task::name));
        return views(d, soon, q);
    }

    static List<Object> userMePaged(Dataset d, Query q) {
        Dataset.User me = d.users[q.user()];
        List<Object> out = new ArrayList<>();
        out.add(userRef(me));
        for (Dataset.User u : d.users) {
            if (u.team() == me.team() && u != me) {
                Map<String, Object> r = userRef(u);
                r.put("tz_offset", u.tz() - me.tz());
                out.add(r);
            }
        }
        return out;
    }

    static List<Object> teamsMembers(Dataset d, Query q) {
        int team = (int) Math.floorMod(q.object(), (long) Dataset.TEAMS);
        List<Dataset.User> us = new ArrayList<>();
        for (Dataset.User u : d.users) if (u.team() == team) us.add(u);
        us.sort(Comparator.comparing(Dataset.User::name, String.CASE_INSENSITIVE_ORDER));
        List<Object> out = new ArrayList<>();
        for (Dataset.User u : us) {
            Map<String, Object> m = userRef(u);
            m.put("role", new String[] {"member", "admin", "guest", "owner"}[u.role()]);
            out.add(m);
        }
        return out;
    }

    static List<Object> teamsMembersFiltered(Dataset d, Query q) {
        int team = (int) Math.floorMod(q.object(), (long) Dataset.TEAMS);
        Map<Integer, Integer> load = new HashMap<>();
        for (Dataset.Task t : d.tasks[q.ws()]) {
            if (d.users[t.assignee()].team() == team && t.completed() == q.completed()) load.merge(t.assignee(), 1, Integer::sum);
        }
        List<Object> out = new ArrayList<>();
        load.entrySet().stream().sorted(Map.Entry.comparingByValue(Comparator.reverseOrder()))
                .forEach(e -> out.add(Map.of("user", d.users[e.getKey()].name(), "load", e.getValue())));
        return out;
    }

    // ---- events ----

    static List<Object> inboxList(Dataset d, Query q) {
        Dataset.Task[] ts = d.tasks[q.ws()];
        List<Dataset.Event> mine = new ArrayList<>();
        for (Dataset.Event e : d.events[q.ws()]) {
            if (ts[e.task()].assignee() % 4 == q.user() % 4 && e.kind() != 2) mine.add(e);
        }
        mine.sort(Comparator.comparingLong(Dataset.Event::at).reversed());
        List<Object> out = new ArrayList<>();
        for (int i = 0; i < mine.size() && i < q.limit(); i++) {
            Dataset.Event e = mine.get(i);
            out.add(Map.of("gid", Long.toString(e.gid()), "task", ts[e.task()].name(), "from", d.users[e.actor()].name(), "text", e.text()));
        }
        return out;
    }

    static List<Object> inboxListFiltered(Dataset d, Query q) {
        Map<Integer, int[]> byTask = new TreeMap<>();
        for (Dataset.Event e : d.events[q.ws()]) {
            boolean unread = ((e.gid() * 31 + q.user()) & 3) == 0;
            if (unread == !q.completed()) byTask.computeIfAbsent(e.task(), k -> new int[4])[e.kind()]++;
        }
        List<Object> out = new ArrayList<>();
        for (Map.Entry<Integer, int[]> en : byTask.entrySet()) {
            if (out.size() >= q.limit()) break;
            int[] c = en.getValue();
            out.add(Map.of("task", d.tasks[q.ws()][en.getKey()].name(), "comments", c[0], "attachments", c[1], "forms", c[3]));
        }
        return out;
    }

    static List<Object> inboxListPaged(Dataset d, Query q) {
        Dataset.Event[] evs = d.events[q.ws()];
        long cursor = 1_763_800_000_000L + Math.floorMod(q.object(), 1_000_000_000L);
        List<Dataset.Event> page = new ArrayList<>();
        for (Dataset.Event e : evs) if (e.at() < cursor) page.add(e);
        page.sort((a, b) -> Long.compare(b.at(), a.at()));
        List<Object> out = new ArrayList<>();
        for (Dataset.Event e : page.subList(0, Math.min(q.limit(), page.size()))) {
            out.add(Map.of("gid", Long.toString(e.gid()), "at", e.at(), "kind", e.kind()));
        }
        out.add(Map.of("next_cursor", page.isEmpty() ? 0 : page.get(Math.min(q.limit(), page.size()) - 1).at()));
        return out;
    }

    static List<Object> commentsList(Dataset d, Query q) {
        int task = (int) Math.floorMod(q.object(), (long) d.tasks[q.ws()].length);
        List<Object> out = new ArrayList<>();
        StringBuilder digest = new StringBuilder();
        for (Dataset.Event e : d.events[q.ws()]) {
            if (e.kind() == 0 && Math.abs(e.task() - task) < 40) {
                out.add(Map.of("author", d.users[e.actor()].name(), "text", e.text(), "at", e.at()));
                digest.append(e.text().charAt(0));
            }
        }
        out.add(Map.of("digest", digest.toString()));
        return out;
    }

    static List<Object> commentsListFiltered(Dataset d, Query q) {
        Map<String, Integer> words = new HashMap<>();
        for (Dataset.Event e : d.events[q.ws()]) {
            if (e.kind() != 0 || e.actor() % 3 != q.assignee() % 3) continue;
            for (String w : e.text().split(" ")) words.merge(w.toLowerCase(), 1, Integer::sum);
        }
        List<Map.Entry<String, Integer>> top = new ArrayList<>(words.entrySet());
        top.sort(Map.Entry.<String, Integer>comparingByValue().reversed().thenComparing(Map.Entry.comparingByKey()));
        List<Object> out = new ArrayList<>();
        for (int i = 0; i < top.size() && i < 10; i++) out.add(Map.of("word", top.get(i).getKey(), "count", top.get(i).getValue()));
        return out;
    }

    static List<Object> attachmentsList(Dataset d, Query q) {
        Map<String, long[]> byExt = new TreeMap<>();
        for (Dataset.Event e : d.events[q.ws()]) {
            if (e.kind() != 1) continue;
            String ext = e.text().substring(e.text().lastIndexOf('.') + 1);
            long[] a = byExt.computeIfAbsent(ext, k -> new long[2]);
            a[0]++;
            a[1] += e.size();
        }
        List<Object> out = new ArrayList<>();
        byExt.forEach((ext, a) -> out.add(Map.of("type", ext, "files", a[0], "bytes", a[1])));
        return out;
    }

    static List<Object> attachmentsListFiltered(Dataset d, Query q) {
        Dataset.Task[] ts = d.tasks[q.ws()];
        List<Dataset.Event> files = new ArrayList<>();
        for (Dataset.Event e : d.events[q.ws()]) if (e.kind() == 1 && ts[e.task()].completed() == q.completed()) files.add(e);
        files.sort(Comparator.comparingInt(Dataset.Event::size).reversed());
        List<Object> out = new ArrayList<>();
        for (int i = 0; i < files.size() && i < q.limit(); i++) {
            Dataset.Event e = files.get(i);
            out.add(Map.of("name", e.text(), "size", String.format("%.1f MB", e.size() / 1e6), "task", ts[e.task()].name()));
        }
        return out;
    }

    static List<Object> auditEvents(Dataset d, Query q) {
        Dataset.Event[] evs = d.events[q.ws()].clone();
        Arrays.sort(evs, (a, b) -> Long.compare(b.at(), a.at()));
        List<Object> out = new ArrayList<>();
        for (Dataset.Event e : evs) {
            if (e.kind() != 2) continue;
            out.add(Map.of("actor", d.users[e.actor()].email(), "action", e.text().split(" ")[0].toLowerCase(), "at", e.at()));
            if (out.size() >= q.limit()) break;
        }
        return out;
    }

    static List<Object> auditEventsFiltered(Dataset d, Query q) {
        Map<Integer, List<Dataset.Event>> byKind = Arrays.stream(d.events[q.ws()])
                .filter(e -> e.actor() % 8 == q.assignee() % 8)
                .collect(Collectors.groupingBy(Dataset.Event::kind));
        List<Object> out = new ArrayList<>();
        byKind.forEach((k, l) -> out.add(Map.of("kind", k, "count", l.size(),
                "latest", l.stream().mapToLong(Dataset.Event::at).max().orElse(0))));
        return out;
    }

    static List<Object> formsGet(Dataset d, Query q) {
        List<Object> out = new ArrayList<>();
        int n = 0;
        for (String f : q.fields()) {
            StringBuilder label = new StringBuilder();
            for (String part : f.split("_")) {
                label.append(Character.toUpperCase(part.charAt(0))).append(part.substring(1)).append(' ');
            }
            out.add(Map.of("field", f, "label", label.toString().trim(), "required", (n++ & 1) == 0,
                    "kind", f.endsWith("s") ? "multi" : "single"));
        }
        return out;
    }

    static List<Object> formsGetFiltered(Dataset d, Query q) {
        int[] byWeekday = new int[7];
        long[] sizes = new long[7];
        for (Dataset.Event e : d.events[q.ws()]) {
            if (e.kind() != 3) continue;
            int wd = (int) ((e.at() / 86_400_000L) % 7);
            byWeekday[wd]++;
            sizes[wd] += e.text().length();
        }
        List<Object> out = new ArrayList<>();
        String[] days = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
        for (int i = 0; i < 7; i++) out.add(Map.of("day", days[i], "submissions", byWeekday[i], "avg_len", byWeekday[i] == 0 ? 0 : sizes[i] / byWeekday[i]));
        return out;
    }

    // ---- search, tags, rules ----

    static List<Object> searchTypeahead(Dataset d, Query q) {
        String prefix = Dataset.WORDS[(int) Math.floorMod(q.object(), (long) Dataset.WORDS.length)].substring(0, 2).toLowerCase();
        List<Object> out = new ArrayList<>();
        for (Dataset.Task t : d.tasks[q.ws()]) {
            String n = t.name().toLowerCase();
            int at = n.indexOf(prefix);
            if (at == 0 || (at > 0 && n.charAt(at - 1) == ' ')) {
                out.add(Map.of("gid", Long.toString(t.gid()), "name", t.name(), "score", at));
                if (out.size() >= q.limit()) break;
            }
        }
        return out;
    }

    static List<Object> searchTypeaheadFiltered(Dataset d, Query q) {
        String word = Dataset.WORDS[(int) Math.floorMod(q.object(), (long) Dataset.WORDS.length)];
        List<Object> out = new ArrayList<>();
        for (Dataset.User u : d.users) {
            if (u.name().regionMatches(true, 0, word, 0, 1)) out.add(Map.of("type", "user", "name", u.name()));
        }
        for (Dataset.Project p : d.projects[q.ws()]) {
            if (p.name().toLowerCase().contains(word.toLowerCase()) && !p.archived()) out.add(Map.of("type", "project", "name", p.name()));
        }
        return out.size() > q.limit() ? out.subList(0, q.limit()) : out;
    }

    static List<Object> searchTypeaheadPaged(Dataset d, Query q) {
        String word = Dataset.WORDS[(int) Math.floorMod(q.object(), (long) Dataset.WORDS.length)].toLowerCase();
        PriorityQueue<Object[]> best = new PriorityQueue<>((a, b) -> Integer.compare((Integer) b[1], (Integer) a[1]));
        for (Dataset.Task t : d.tasks[q.ws()]) {
            String first = t.name().substring(0, t.name().indexOf(' ')).toLowerCase();
            best.add(new Object[] {t, editDistance(first, word)});
            if (best.size() > 20) best.poll();
        }
        List<Object> out = new ArrayList<>();
        while (!best.isEmpty()) {
            Object[] e = best.poll();
            out.add(0, Map.of("name", ((Dataset.Task) e[0]).name(), "distance", e[1]));
        }
        return out;
    }

    static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int sub = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(sub, Math.min(prev[j] + 1, cur[j - 1] + 1));
            }
            int[] t = prev; prev = cur; cur = t;
        }
        return prev[b.length()];
    }

    static List<Object> tagsList(Dataset d, Query q) {
        int[] counts = new int[40];
        for (Dataset.Task t : d.tasks[q.ws()]) for (int tag : t.tags()) counts[tag]++;
        Integer[] order = new Integer[40];
        for (int i = 0; i < 40; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> counts[b] - counts[a]);
        List<Object> out = new ArrayList<>();
        for (int i = 0; i < Math.min(q.limit(), 40); i++) out.add(Map.of("tag", "tag-" + order[i], "count", counts[order[i]]));
        return out;
    }

    static List<Object> tagsListFiltered(Dataset d, Query q) {
        Map<Long, Integer> pairs = new HashMap<>();
        for (Dataset.Task t : d.tasks[q.ws()]) {
            if (t.completed() != q.completed()) continue;
            int[] tg = t.tags();
            for (int i = 0; i < tg.length; i++) {
                for (int j = i + 1; j < tg.length; j++) {
                    long key = (long) Math.min(tg[i], tg[j]) << 32 | Math.max(tg[i], tg[j]);
                    pairs.merge(key, 1, Integer::sum);
                }
            }
        }
        return pairs.entrySet().stream()
                .sorted((a, b) -> b.getValue() - a.getValue())
                .limit(15)
                .map(e -> (Object) Map.of("a", "tag-" + (e.getKey() >>> 32), "b", "tag-" + (e.getKey() & 0xffffffffL), "count", e.getValue()))
                .collect(Collectors.toList());
    }

    @SuppressWarnings("unchecked")
    static final Predicate<Dataset.Task>[] RULES = new Predicate[] {
        (Predicate<Dataset.Task>) t -> t.due() < 7 && !t.completed(),
        (Predicate<Dataset.Task>) t -> t.priority() == 3,
        (Predicate<Dataset.Task>) t -> t.tags().length == 0,
        (Predicate<Dataset.Task>) t -> t.estimate() > 6,
        (Predicate<Dataset.Task>) t -> t.subtasks() > 3 && t.parent() < 0,
        (Predicate<Dataset.Task>) t -> t.name().startsWith("fix"),
        (Predicate<Dataset.Task>) t -> t.section() == 0 && t.completed(),
        (Predicate<Dataset.Task>) t -> (t.modified() & 7) == 0,
    };

    static List<Object> rulesList(Dataset d, Query q) {
        int[] hits = new int[RULES.length];
        for (Dataset.Task t : d.tasks[q.ws()]) {
            for (int r = 0; r < RULES.length; r++) if (RULES[r].test(t)) hits[r]++;
        }
        List<Object> out = new ArrayList<>();
        for (int r = 0; r < RULES.length; r++) out.add(Map.of("rule", "rule-" + r, "matches", hits[r]));
        return out;
    }

    static List<Object> rulesListFiltered(Dataset d, Query q) {
        List<Object> out = new ArrayList<>();
        for (int r = 0; r < RULES.length; r++) {
            Predicate<Dataset.Task> p = RULES[r];
            long n = Arrays.stream(d.tasks[q.ws()]).filter(t -> t.completed() == q.completed()).filter(p).count();
            out.add(Map.of("rule", String.format("When %s matches (%d tasks), notify %s", "rule-" + r, n,
                    d.users[(q.assignee() + r) % Dataset.USERS].name())));
        }
        return out;
    }

    // ---- reports ----

    static List<Object> reportsBurnup(Dataset d, Query q) {
        int[] scope = new int[90];
        int[] done = new int[90];
        for (Dataset.Task t : d.tasks[q.ws()]) {
            scope[t.due()]++;
            if (t.completed()) done[t.due()]++;
        }
        List<Object> out = new ArrayList<>();
        int s = 0, c = 0;
        for (int day = 0; day < 90; day++) {
            s += scope[day];
            c += done[day];
            if (day % 3 == 0) out.add(Map.of("day", dueOn(day), "scope", s, "done", c));
        }
        return out;
    }

    static List<Object> reportsBurnupFiltered(Dataset d, Query q) {
        double[] perDay = new double[90];
        for (Dataset.Task t : d.tasks[q.ws()]) {
            if (t.completed() == q.completed()) perDay[t.due()] += t.estimate();
        }
        List<Object> out = new ArrayList<>();
        double window = 0;
        for (int day = 0; day < 90; day++) {
            window += perDay[day];
            if (day >= 7) window -= perDay[day - 7];
            if (day >= 6 && day % 5 == 0) out.add(Map.of("day", day, "avg", window / 7.0));
        }
        return out;
    }

    static List<Object> timelineRange(Dataset d, Query q) {
        int from = (int) Math.floorMod(q.object(), 76L);
        TreeMap<Integer, List<String>> days = new TreeMap<>();
        for (Dataset.Task t : d.tasks[q.ws()]) {
            if (t.due() >= from && t.due() < from + 14) days.computeIfAbsent(t.due(), k -> new ArrayList<>()).add(t.name());
        }
        List<Object> out = new ArrayList<>();
        days.forEach((day, names) -> {
            names.sort(null);
            out.add(Map.of("day", dueOn(day), "tasks", names.size() > 5 ? names.subList(0, 5) : names));
        });
        return out;
    }

    static List<Object> timelineRangeFiltered(Dataset d, Query q) {
        Map<Integer, Map<Integer, Integer>> perUserDay = new HashMap<>();
        for (Dataset.Task t : d.tasks[q.ws()]) {
            if (t.completed() != q.completed()) continue;
            perUserDay.computeIfAbsent(t.assignee(), k -> new HashMap<>()).merge(t.due(), 1, Integer::sum);
        }
        List<Object> out = new ArrayList<>();
        for (Map.Entry<Integer, Map<Integer, Integer>> e : perUserDay.entrySet()) {
            long clashes = e.getValue().values().stream().filter(n -> n > 1).count();
            if (clashes > 0) out.add(Map.of("user", d.users[e.getKey()].name(), "clashing_days", clashes));
            if (out.size() >= q.limit()) break;
        }
        return out;
    }

    static List<Object> goalsProgress(Dataset d, Query q) {
        double[] weight = new double[10];
        double[] doneW = new double[10];
        for (Dataset.Task t : d.tasks[q.ws()]) {
            int g = (int) (t.gid() % 10);
            double w = t.estimate() * (1 + t.priority() * 0.5);
            weight[g] += w;
            if (t.completed()) doneW[g] += w;
        }
        List<Object> out = new ArrayList<>();
        for (int g = 0; g < 10; g++) {
            double p = weight[g] == 0 ? 0 : doneW[g] / weight[g];
            out.add(Map.of("goal", "Goal " + (g + 1), "progress", Math.round(p * 1000) / 10.0, "status", p > 0.3 ? "on_track" : p > 0.2 ? "at_risk" : "off_track"));
        }
        return out;
    }

    static List<Object> goalsProgressFiltered(Dataset d, Query q) {
        int goal = (int) Math.floorMod(q.object(), 10L);
        double[] cumulative = new double[13];
        for (Dataset.Task t : d.tasks[q.ws()]) {
            if (t.gid() % 10 == goal && t.completed() == q.completed()) cumulative[Math.min(12, t.due() / 7)] += t.estimate();
        }
        for (int w = 1; w < cumulative.length; w++) cumulative[w] += cumulative[w - 1];
        List<Object> out = new ArrayList<>();
        for (int w = 0; w < cumulative.length; w++) out.add(Map.of("week", w + 1, "value", cumulative[w]));
        return out;
    }
}
