// A CQL client for deploy/cluster/selftest-cassandra.sh: one driver session that lives through
// the whole test (as a service's does, so the driver's own view of dead, cut and healed nodes is
// part of what is measured). It takes one command per line on stdin and answers each with one
// line on stdout: "ok key=value ..." or "error <message>". Run by Java's source launcher against
// the stack's Cassandra jars (which include the DataStax Java driver 3.12, shaded), no build step:
//   java -cp "$HOME/.cache/chat-stack/jars/cassandra/*" deploy/cluster/CqlProbe.java CONTACTS KEYSPACE
// CONTACTS is host:port,... (as CHAT__CASSANDRA__NODES); the test rows go to KEYSPACE.cluster_probe.
//
//   replication            the keyspace's replication, e.g. "ok class=SimpleStrategy replication_factor=3"
//   table                  create the test table if missing, wait for schema agreement
//   write PREFIX N CL      write rows PREFIX-1..N at consistency CL, 32 at a time:
//                          ok acked=.. failed=.. errors=<error>:<count>,... ms=..
//   read PREFIX N CL       read them at CL: ok found=.. missing=.. failed=.. errors=.. ms=..
//   load PREFIX CL         in the background: write a row at CL and read it back at CL, every 50 ms
//   loadwait SINCE SECS    wait until a load write started at or after SINCE (epoch ms) succeeds:
//                          ok after_ms=<its completion - SINCE>
//   loadstop SINCE         stop the load and tell what happened from SINCE on: ok writes=.. failed=..
//                          reads=.. read_failed=.. first_ok_ms=.. max_gap_ms=.. errors=..
//   verify CL              read back at CL every row this process wrote and had acked at a quorum
//                          level (QUORUM, LOCAL_QUORUM, EACH_QUORUM, ALL): ok acked=.. found=..
//                          lost=.. failed_writes=.. failed_present=.. (failed writes that exist anyway)
//   quit
//
// Requests are idempotent (a row's value is its key), so the driver may retry them on another
// node after a client-side time-out (3 s, above the nodes' 2 s write time-out), as a service's
// driver does.

import com.datastax.driver.core.BoundStatement;
import com.datastax.driver.core.Cluster;
import com.datastax.driver.core.ConsistencyLevel;
import com.datastax.driver.core.PreparedStatement;
import com.datastax.driver.core.QueryOptions;
import com.datastax.driver.core.Row;
import com.datastax.driver.core.Session;
import com.datastax.driver.core.SimpleStatement;
import com.datastax.driver.core.SocketOptions;
import com.datastax.driver.core.exceptions.NoHostAvailableException;
import com.datastax.driver.core.policies.ConstantReconnectionPolicy;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;

public class CqlProbe {
    static final int IN_FLIGHT = 32;
    static final long LOAD_PAUSE_MS = 50;

    final Session session;
    final String keyspace;
    PreparedStatement insert, select;
    final ExecutorService pool = Executors.newFixedThreadPool(IN_FLIGHT);
    // Rows acked at a quorum level, and rows whose write failed (unknown: maybe applied somewhere).
    final Set<String> acked = ConcurrentHashMap.newKeySet();
    final Set<String> failed = ConcurrentHashMap.newKeySet();

    // One load operation: a write or a read, when it started and ended, and how.
    record Op(boolean write, long start, long end, String error) {}

    final List<Op> loadOps = new ArrayList<>();
    volatile boolean loadRunning;
    Thread loadThread;

    CqlProbe(Session session, String keyspace) {
        this.session = session;
        this.keyspace = keyspace;
    }

    public static void main(String[] args) throws Exception {
        // The driver logs through slf4j/logback, whose default is DEBUG on stdout: silence it.
        ((ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME))
                .setLevel(ch.qos.logback.classic.Level.OFF);
        if (args.length != 2) {
            System.err.println("usage: CqlProbe CONTACTS KEYSPACE");
            System.exit(2);
        }
        List<InetSocketAddress> contacts = new ArrayList<>();
        for (String hp : args[0].split(",")) {
            int i = hp.lastIndexOf(':');
            contacts.add(new InetSocketAddress(hp.substring(0, i), Integer.parseInt(hp.substring(i + 1))));
        }
        Cluster cluster = Cluster.builder()
                .addContactPointsWithPorts(contacts)
                .withSocketOptions(new SocketOptions().setConnectTimeoutMillis(2000).setReadTimeoutMillis(3000))
                .withQueryOptions(new QueryOptions().setDefaultIdempotence(true))
                // A node back from a crash or a cut is used again within a second.
                .withReconnectionPolicy(new ConstantReconnectionPolicy(1000))
                .withoutMetrics()
                .withoutJMXReporting()
                .build();
        CqlProbe probe = new CqlProbe(cluster.connect(), args[1]);
        System.out.println("ok ready hosts=" + cluster.getMetadata().getAllHosts().size());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) continue;
            if (line.equals("quit")) break;
            String reply;
            try {
                reply = probe.run(line.split("\\s+"));
            } catch (Exception e) {
                reply = "error " + errorName(e) + ": " + String.valueOf(e.getMessage()).replace('\n', ' ');
            }
            System.out.println(reply);
            System.out.flush();
        }
        probe.stopLoad();
        probe.pool.shutdownNow();
        cluster.close();
        System.exit(0);
    }

    String run(String[] a) throws Exception {
        switch (a[0]) {
            case "replication": {
                Row row = session.execute(new SimpleStatement(
                                "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", keyspace)
                        .setConsistencyLevel(ConsistencyLevel.ONE)).one();
                if (row == null) return "error no keyspace " + keyspace;
                StringBuilder sb = new StringBuilder("ok");
                for (Map.Entry<String, String> e : new TreeMap<>(row.getMap(0, String.class, String.class)).entrySet()) {
                    String v = e.getValue().replaceFirst("^org\\.apache\\.cassandra\\.locator\\.", "");
                    sb.append(' ').append(e.getKey()).append('=').append(v);
                }
                return sb.toString();
            }
            case "table": {
                session.execute("CREATE TABLE IF NOT EXISTS " + keyspace + ".cluster_probe (k text PRIMARY KEY, v text)");
                boolean agreed = session.getCluster().getMetadata().checkSchemaAgreement();
                prepare();
                return "ok table=" + keyspace + ".cluster_probe schema_agreement=" + agreed;
            }
            case "write": return write(a[1], Integer.parseInt(a[2]), cl(a[3]));
            case "read": return read(a[1], Integer.parseInt(a[2]), cl(a[3]));
            case "load": return startLoad(a[1], cl(a[2]));
            case "loadwait": return loadWait(Long.parseLong(a[1]), Long.parseLong(a[2]));
            case "loadstop": return loadStop(Long.parseLong(a[1]));
            case "verify": return verify(cl(a[1]));
            default: return "error unknown command " + a[0];
        }
    }

    void prepare() {
        if (insert != null) return;
        insert = session.prepare("INSERT INTO " + keyspace + ".cluster_probe (k, v) VALUES (?, ?)");
        select = session.prepare("SELECT v FROM " + keyspace + ".cluster_probe WHERE k = ?");
    }

    static ConsistencyLevel cl(String s) {
        return ConsistencyLevel.valueOf(s.toUpperCase());
    }

    static boolean isQuorum(ConsistencyLevel cl) {
        return cl == ConsistencyLevel.QUORUM || cl == ConsistencyLevel.LOCAL_QUORUM
                || cl == ConsistencyLevel.EACH_QUORUM || cl == ConsistencyLevel.ALL;
    }

    // "Unavailable", "WriteTimeout", "NoHostAvailable(OperationTimedOut+Unavailable)", ...
    static String errorName(Throwable t) {
        while (t instanceof java.util.concurrent.ExecutionException && t.getCause() != null) t = t.getCause();
        if (t instanceof NoHostAvailableException nh && !nh.getErrors().isEmpty()) {
            Set<String> each = new TreeSet<>();
            for (Throwable e : nh.getErrors().values()) each.add(errorName(e));
            return "NoHostAvailable(" + String.join("+", each) + ")";
        }
        return t.getClass().getSimpleName().replaceFirst("Exception$", "");
    }

    // Write one row; null when acked, else the error's name.
    String writeRow(String key, ConsistencyLevel cl) {
        BoundStatement st = insert.bind(key, key);
        st.setConsistencyLevel(cl);
        try {
            session.execute(st);
            if (isQuorum(cl)) acked.add(key);
            failed.remove(key);
            return null;
        } catch (Exception e) {
            if (!acked.contains(key)) failed.add(key);
            return errorName(e);
        }
    }

    // Read one row: "found", "missing", or the error's name.
    String readRow(String key, ConsistencyLevel cl) {
        BoundStatement st = select.bind(key);
        st.setConsistencyLevel(cl);
        try {
            Row row = session.execute(st).one();
            return row != null && key.equals(row.getString(0)) ? "found" : "missing";
        } catch (Exception e) {
            return errorName(e);
        }
    }

    // Run f over the keys, IN_FLIGHT at a time; count the outcomes ("found"/"missing"/null = ok, errors).
    Map<String, Integer> each(List<String> keys, java.util.function.Function<String, String> f) throws Exception {
        Map<String, AtomicInteger> n = new ConcurrentHashMap<>();
        List<Future<?>> fs = new ArrayList<>();
        for (String k : keys) {
            fs.add(pool.submit(() -> {
                String r = f.apply(k);
                n.computeIfAbsent(r == null ? "ok" : r, x -> new AtomicInteger()).incrementAndGet();
            }));
        }
        for (Future<?> x : fs) x.get();
        Map<String, Integer> out = new TreeMap<>();
        n.forEach((k, v) -> out.put(k, v.get()));
        return out;
    }

    static List<String> keys(String prefix, int n) {
        List<String> ks = new ArrayList<>();
        for (int i = 1; i <= n; i++) ks.add(prefix + "-" + i);
        return ks;
    }

    // "Unavailable:3,WriteTimeout:13" of every outcome but the given good ones.
    static String errors(Map<String, Integer> m, Predicate<String> good) {
        StringBuilder sb = new StringBuilder();
        m.forEach((k, v) -> {
            if (!good.test(k)) sb.append(sb.length() > 0 ? "," : "").append(k).append(':').append(v);
        });
        return sb.length() > 0 ? sb.toString() : "-";
    }

    static int bad(Map<String, Integer> m, Predicate<String> good) {
        int s = 0;
        for (Map.Entry<String, Integer> e : m.entrySet()) if (!good.test(e.getKey())) s += e.getValue();
        return s;
    }

    String write(String prefix, int n, ConsistencyLevel cl) throws Exception {
        prepare();
        long t = System.currentTimeMillis();
        Map<String, Integer> m = each(keys(prefix, n), k -> writeRow(k, cl));
        return String.format("ok acked=%d failed=%d errors=%s ms=%d", m.getOrDefault("ok", 0),
                bad(m, "ok"::equals), errors(m, "ok"::equals), System.currentTimeMillis() - t);
    }

    String read(String prefix, int n, ConsistencyLevel cl) throws Exception {
        prepare();
        long t = System.currentTimeMillis();
        Map<String, Integer> m = each(keys(prefix, n), k -> readRow(k, cl));
        Predicate<String> good = r -> r.equals("found") || r.equals("missing");
        return String.format("ok found=%d missing=%d failed=%d errors=%s ms=%d", m.getOrDefault("found", 0),
                m.getOrDefault("missing", 0), bad(m, good), errors(m, good), System.currentTimeMillis() - t);
    }

    String startLoad(String prefix, ConsistencyLevel cl) {
        prepare();
        if (loadRunning) return "error a load is running";
        synchronized (loadOps) {
            loadOps.clear();
        }
        loadRunning = true;
        loadThread = new Thread(() -> {
            for (int i = 1; loadRunning; i++) {
                String key = prefix + "-" + i;
                long t0 = System.currentTimeMillis();
                String w = writeRow(key, cl);
                long t1 = System.currentTimeMillis();
                String r = readRow(key, cl);
                long t2 = System.currentTimeMillis();
                synchronized (loadOps) {
                    loadOps.add(new Op(true, t0, t1, w));
                    loadOps.add(new Op(false, t1, t2, r == null || r.equals("found") ? null : r));
                    loadOps.notifyAll();
                }
                try {
                    Thread.sleep(LOAD_PAUSE_MS);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "load");
        loadThread.start();
        return "ok load=" + prefix + " cl=" + cl;
    }

    String loadWait(long since, long secs) throws InterruptedException {
        long deadline = System.currentTimeMillis() + secs * 1000;
        synchronized (loadOps) {
            while (true) {
                for (Op o : loadOps) {
                    if (o.write && o.error == null && o.start >= since) return "ok after_ms=" + (o.end - since);
                }
                long left = deadline - System.currentTimeMillis();
                if (left <= 0 || !loadRunning) return "error no load write succeeded within " + secs + "s";
                loadOps.wait(left);
            }
        }
    }

    void stopLoad() throws InterruptedException {
        loadRunning = false;
        if (loadThread != null) loadThread.join();
    }

    String loadStop(long since) throws InterruptedException {
        stopLoad();
        long stop = System.currentTimeMillis();
        int writes = 0, wfail = 0, reads = 0, rfail = 0;
        long firstOk = -1, gap = 0, lastOk = since;
        Map<String, Integer> errs = new TreeMap<>();
        synchronized (loadOps) {
            for (Op o : loadOps) {
                if (o.start < since) continue;
                if (o.write) writes++; else reads++;
                if (o.error != null) {
                    if (o.write) wfail++; else rfail++;
                    errs.merge((o.write ? "write:" : "read:") + o.error, 1, Integer::sum);
                } else if (o.write) {
                    if (firstOk < 0) firstOk = o.end - since;
                    gap = Math.max(gap, o.end - lastOk);
                    lastOk = o.end;
                }
            }
        }
        gap = Math.max(gap, stop - lastOk);
        return String.format("ok writes=%d failed=%d reads=%d read_failed=%d first_ok_ms=%d max_gap_ms=%d errors=%s",
                writes, wfail, reads, rfail, firstOk, gap, errors(errs, k -> false));
    }

    String verify(ConsistencyLevel cl) throws Exception {
        prepare();
        List<String> ks = new ArrayList<>(acked);
        Map<String, Integer> m = each(ks, k -> readRow(k, cl));
        List<String> fs = new ArrayList<>(failed);
        Map<String, Integer> f = each(fs, k -> readRow(k, cl));
        return String.format("ok acked=%d found=%d lost=%d unreadable=%d failed_writes=%d failed_present=%d errors=%s",
                ks.size(), m.getOrDefault("found", 0), m.getOrDefault("missing", 0),
                bad(m, r -> r.equals("found") || r.equals("missing")), fs.size(), f.getOrDefault("found", 0),
                errors(m, r -> r.equals("found") || r.equals("missing")));
    }
}
