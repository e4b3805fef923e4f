import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The in-memory dataset every resolver reads: tasks, projects, users, teams
 * and events (comments, attachments, audit entries, form submissions) of 50
 * workspaces, built from a fixed seed at start. Nothing writes to it after
 * it is built, so resolvers read it without locks.
 */
final class Dataset {
    static final int WORKSPACES = 50;
    static final int USERS = 300;
    static final int TEAMS = 30;
    static final String[] WORDS = {"Draft", "launch", "plan", "review", "Q4", "roadmap", "fix", "onboarding",
        "budget", "sync", "design", "spec", "migration", "retro", "hiring", "metrics", "API",
        "customer", "feedback", "release", "audit", "invoice", "beta", "sprint", "triage"};
    static final String[] NAMES = {"Ada Lovelace", "Grace Hopper", "Alan Turing", "Barbara Liskov",
        "Ken Thompson", "Radia Perlman", "Leslie Lamport", "Frances Allen", "Edsger Dijkstra", "John Backus"};
    static final String[] EXTENSIONS = {".pdf", ".png", ".docx", ".xlsx", ".mov", ".txt"};

    record Task(long gid, int ws, int project, int assignee, boolean completed, int due, int priority,
                int[] tags, String name, long modified, int subtasks, double estimate, int section, int parent) { }

    record Project(long gid, int ws, int team, String name, int owner, boolean archived, int color) { }

    record User(long gid, String name, String email, int team, int role, int tz) { }

    /** kind: 0 comment, 1 attachment, 2 audit, 3 form submission. */
    record Event(long gid, int ws, int kind, int task, int actor, long at, String text, int size) { }

    final Task[][] tasks = new Task[WORKSPACES][];
    final Project[][] projects = new Project[WORKSPACES][];
    final Event[][] events = new Event[WORKSPACES][];
    final User[] users = new User[USERS];

    Dataset(long seed, int tasksPerWorkspace) {
        Random r = new Random(seed);
        for (int u = 0; u < USERS; u++) {
            String n = NAMES[r.nextInt(NAMES.length)] + " " + (u + 1);
            users[u] = new User(1000 + u, n, n.toLowerCase().replace(' ', '.') + "@example.com", u % TEAMS, r.nextInt(4), r.nextInt(24) - 11);
        }
        for (int w = 0; w < WORKSPACES; w++) {
            int np = 8 + r.nextInt(8);
            projects[w] = new Project[np];
            for (int p = 0; p < np; p++) {
                projects[w][p] = new Project(1_100_000_000L + w * 1000L + p, w, r.nextInt(TEAMS),
                        WORDS[r.nextInt(WORDS.length)] + " " + WORDS[r.nextInt(WORDS.length)], r.nextInt(USERS), r.nextInt(10) == 0, r.nextInt(16));
            }
            Task[] ts = new Task[tasksPerWorkspace];
            for (int t = 0; t < ts.length; t++) {
                int nt = r.nextInt(4);
                int[] tags = new int[nt];
                for (int k = 0; k < nt; k++) tags[k] = r.nextInt(40);
                String name = WORDS[r.nextInt(WORDS.length)] + " " + WORDS[r.nextInt(WORDS.length)] + " " + WORDS[r.nextInt(WORDS.length)];
                ts[t] = new Task(1_200_000_000_000_000L + w * 1_000_000L + t, w, r.nextInt(np), r.nextInt(USERS), r.nextInt(4) == 0,
                        r.nextInt(90), r.nextInt(4), tags, name, 1_763_800_000_000L + r.nextInt(1_000_000_000), r.nextInt(6),
                        0.5 + r.nextInt(16) / 2.0, r.nextInt(6), t > 10 && r.nextInt(5) == 0 ? r.nextInt(t) : -1);
            }
            tasks[w] = ts;
            List<Event> evs = new ArrayList<>();
            for (int e = 0; e < tasksPerWorkspace; e++) {
                int kind = r.nextInt(4);
                String text = kind == 1
                        ? WORDS[r.nextInt(WORDS.length)].toLowerCase() + "-" + e + EXTENSIONS[r.nextInt(EXTENSIONS.length)]
                        : WORDS[r.nextInt(WORDS.length)] + " " + WORDS[r.nextInt(WORDS.length)] + " " + WORDS[r.nextInt(WORDS.length)] + " " + WORDS[r.nextInt(WORDS.length)];
                evs.add(new Event(1_300_000_000_000L + w * 1_000_000L + e, w, kind, r.nextInt(ts.length), r.nextInt(USERS),
                        1_763_800_000_000L + r.nextInt(1_000_000_000), text, 1 + r.nextInt(5_000_000)));
            }
            events[w] = evs.toArray(new Event[0]);
        }
    }
}
