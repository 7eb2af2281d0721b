package flinkbed;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiter;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * The flink-sync test bed's stateful streaming job.
 *
 * <p>Pipeline: a FLIP-27 {@link DataGeneratorSource} emits 0, 1, 2, ... at {@code --rate}
 * records per second (its position is part of every checkpoint and savepoint), keyed by
 * {@code value % --keys}; {@link KeyCounter} keeps one {@code ValueState<Long>} count per key; the
 * result goes to the Sink V2 {@link DiscardingSink}. Every operator has a {@code uid()}, so
 * savepoints map back onto the same operators.
 *
 * <p>State proof: {@link KeyCounter} exposes the gauge {@code snapshot} =
 * {@code "lastValue,stateTotal,restoredTotal"} (one atomic string, because REST samples gauges
 * one by one). {@code stateTotal} is the sum of the per-key counts this subtask holds (restored
 * counts included) and {@code restoredTotal} the part of it that came from restored state. At
 * parallelism 1, {@code stateTotal == lastValue + 1} on a fresh job and on a job restored from a
 * savepoint; a job that lost its keyed state would only count the records since its start, and
 * {@code restoredTotal} would be 0.
 *
 * <p>Arguments (unknown ones are ignored, so the JobManager's trailing dynamic properties do not
 * disturb it):
 *
 * <ul>
 *   <li>{@code --rate R} records per second (default 50)
 *   <li>{@code --rate-file F} a controllable load: the total rate is read from file F (one number,
 *       records per second over all source subtasks) about every half second, so a test changes the
 *       load of a running job by rewriting the file; {@code --rate} is used while F is missing or
 *       unreadable. The source waits for its next record without blocking its task thread, so it
 *       reads as idle, not busy (see {@link FileRate}).
 *   <li>{@code --cost-us C} a known cost per record in the counting operator: C microseconds of
 *       busy time per record, so one subtask processes about 10^6 / C records per second (see
 *       {@link KeyCounter#pay})
 *   <li>{@code --keys K} number of keys (default 4)
 *   <li>{@code --checkpoint-interval-ms N} enable periodic checkpoints (default 0 = off, unless the
 *       cluster configuration enables them)
 *   <li>{@code --fail-at-value V} throw once, in the first execution attempt only, when value V
 *       arrives. Without checkpointing (no restart strategy) the job goes FAILED.
 *   <li>{@code --fail-always} throw in {@code main()} before the job is built: the application
 *       never starts a job (an upgrade to it never becomes stable).
 *   <li>{@code --fail-tasks-always} the counting operator throws in {@code open()} on every
 *       attempt: the job is submitted but its tasks never run.
 * </ul>
 *
 * <p>Compiles unchanged against flink-dist 1.20 and 2.x: {@code open(OpenContext)} instead of the
 * removed {@code open(Configuration)}, FLIP-27 source and Sink V2 instead of the legacy
 * SourceFunction/SinkFunction, and no ParameterTool (its package differs between 1.x and 2.x).
 */
public final class CounterJob {

    public static final String SOURCE_UID = "counter-source";
    public static final String COUNTER_UID = "count-per-key";
    public static final String SINK_UID = "discard-sink";

    private CounterJob() {}

    public static void main(String[] args) throws Exception {
        if (hasFlag(args, "--fail-always")) {
            throw new IllegalStateException("flinkbed CounterJob: --fail-always given, failing in main()");
        }
        double rate = Double.parseDouble(option(args, "--rate", "50"));
        int keys = Integer.parseInt(option(args, "--keys", "4"));
        long checkpointInterval = Long.parseLong(option(args, "--checkpoint-interval-ms", "0"));
        long failAt = Long.parseLong(option(args, "--fail-at-value", "-1"));
        boolean failTasks = hasFlag(args, "--fail-tasks-always");
        String rateFile = option(args, "--rate-file", "");
        long costMicros = Long.parseLong(option(args, "--cost-us", "0"));

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        if (checkpointInterval > 0) {
            env.enableCheckpointing(checkpointInterval);
        }

        DataGeneratorSource<Long> source =
                new DataGeneratorSource<>(
                        (GeneratorFunction<Long, Long>) index -> index,
                        Long.MAX_VALUE,
                        rateFile.isEmpty() ? RateLimiterStrategy.perSecond(rate) : new FileRate(rateFile, rate),
                        Types.LONG);

        env.fromSource(source, WatermarkStrategy.noWatermarks(), SOURCE_UID)
                .uid(SOURCE_UID)
                .keyBy(new ModuloKey(keys), Types.INT)
                .process(new KeyCounter(failAt, failTasks, costMicros))
                .uid(COUNTER_UID)
                .name(COUNTER_UID)
                .sinkTo(new DiscardingSink<>())
                .uid(SINK_UID)
                .name(SINK_UID);

        // No explicit name: the job is named by `pipeline.name` (the operator sets it to the
        // FlinkDeployment's name), falling back to Flink's default.
        env.execute();
    }

    private static String option(String[] args, String name, String fallback) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals(name)) {
                return args[i + 1];
            }
        }
        return fallback;
    }

    private static boolean hasFlag(String[] args, String name) {
        for (String a : args) {
            if (a.equals(name)) {
                return true;
            }
        }
        return false;
    }

    /** {@code value % keys}. */
    public static final class ModuloKey implements KeySelector<Long, Integer> {
        private final int keys;

        public ModuloKey(int keys) {
            this.keys = keys;
        }

        @Override
        public Integer getKey(Long value) {
            return (int) (value % keys);
        }
    }

    /** Counts the records of each key in keyed {@link ValueState}; publishes the gauges. */
    public static final class KeyCounter extends KeyedProcessFunction<Integer, Long, Long> {
        private final long failAt;
        private final boolean failTasks;
        private final long costNanos;
        private transient long owedNanos;

        private transient ValueState<Long> count;
        private transient Set<Integer> keysSeen;
        private transient volatile long lastValue;
        private transient volatile long stateTotal;
        private transient volatile long restoredTotal;
        private transient volatile String snapshot;

        public KeyCounter(long failAt, boolean failTasks, long costMicros) {
            this.failAt = failAt;
            this.failTasks = failTasks;
            this.costNanos = costMicros * 1000L;
        }

        /**
         * The record's cost: the task thread waits {@code --cost-us} per record, in pauses of at
         * least 2 ms (a finer sleep overshoots), keeping the overshoot as credit. Flink counts the
         * time a task spends in processElement as busy, whether it spins or waits, so the busy
         * time and the true processing rate are what a CPU-bound operator of that cost shows; a
         * spin would instead compete for the test machine's few cores with the other JVMs and make
         * the cost depend on their load.
         */
        private void pay() {
            owedNanos += costNanos;
            if (owedNanos >= 2_000_000L) {
                long start = System.nanoTime();
                LockSupport.parkNanos(owedNanos);
                owedNanos -= System.nanoTime() - start;
            }
        }

        @Override
        public void open(OpenContext openContext) {
            if (failTasks) {
                throw new IllegalStateException("flinkbed CounterJob: --fail-tasks-always given");
            }
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
            keysSeen = new HashSet<>();
            lastValue = -1;
            snapshot = "-1,0,0";
            getRuntimeContext().getMetricGroup().gauge("lastValue", (Gauge<Long>) () -> lastValue);
            getRuntimeContext().getMetricGroup().gauge("stateTotal", (Gauge<Long>) () -> stateTotal);
            getRuntimeContext().getMetricGroup().gauge("snapshot", (Gauge<String>) () -> snapshot);
        }

        @Override
        public void processElement(Long value, Context ctx, Collector<Long> out) throws Exception {
            if (value == failAt && getRuntimeContext().getTaskInfo().getAttemptNumber() == 0) {
                throw new IllegalStateException("flinkbed CounterJob: injected failure at value " + value);
            }
            if (costNanos > 0) {
                pay();
            }
            Long previous = count.value();
            long next = (previous == null ? 0L : previous) + 1;
            count.update(next);
            // The first time this subtask sees a key, the count it finds there was restored.
            if (keysSeen.add(ctx.getCurrentKey()) && previous != null) {
                stateTotal += previous;
                restoredTotal += previous;
            }
            stateTotal += 1;
            lastValue = value;
            snapshot = value + "," + stateTotal + "," + restoredTotal;
            out.collect(next);
        }
    }

    /**
     * A rate limiter whose total rate comes from a file (see {@code --rate-file}). Each source
     * subtask takes its share ({@code rate / parallelism}). A record's permit is a future that
     * completes at its due time, so the source task waits idle, as a source waiting for input does;
     * a limiter that sleeps in {@code acquire} (Flink's own) makes the source read 100 % busy, and
     * the autoscaler would scale it up. A source that fell behind does not burst to catch up.
     *
     * <p>Raw types: {@code RateLimiter} is generic in 2.x and not in 1.20; both {@code acquire()}
     * (abstract in 1.20) and {@code acquire(int)} (abstract in 2.x) are implemented.
     */
    @SuppressWarnings({"rawtypes", "unchecked"})
    public static final class FileRate implements RateLimiterStrategy {
        private static final ScheduledExecutorService TIMER =
                Executors.newSingleThreadScheduledExecutor(
                        r -> {
                            Thread t = new Thread(r, "flinkbed-file-rate");
                            t.setDaemon(true);
                            return t;
                        });

        private final String path;
        private final double fallbackRate;

        public FileRate(String path, double fallbackRate) {
            this.path = path;
            this.fallbackRate = fallbackRate;
        }

        @Override
        public RateLimiter createRateLimiter(int parallelism) {
            return new Limiter(path, fallbackRate, Math.max(1, parallelism));
        }

        private static final class Limiter implements RateLimiter {
            private static final long REREAD_NANOS = 500_000_000L;
            private final String path;
            private final double fallbackRate;
            private final int parallelism;
            private double rate;
            private long readAt = Long.MIN_VALUE;
            private long dueAt = System.nanoTime();

            Limiter(String path, double fallbackRate, int parallelism) {
                this.path = path;
                this.fallbackRate = fallbackRate;
                this.parallelism = parallelism;
            }

            private double currentRate(long now) {
                if (readAt == Long.MIN_VALUE || now - readAt >= REREAD_NANOS) {
                    readAt = now;
                    double total;
                    try {
                        total = Double.parseDouble(
                                new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.UTF_8).trim());
                    } catch (IOException | NumberFormatException e) {
                        total = fallbackRate;
                    }
                    rate = Math.max(0.1, total / parallelism);
                }
                return rate;
            }

            @Override
            public CompletionStage<Void> acquire() {
                return acquire(1);
            }

            // no @Override: the method exists in 2.x only
            public CompletionStage<Void> acquire(int permits) {
                long now = System.nanoTime();
                dueAt = Math.max(dueAt, now - 100_000_000L)
                        + (long) (permits * 1e9 / currentRate(now));
                long wait = dueAt - now;
                if (wait <= 0) {
                    return CompletableFuture.completedFuture(null);
                }
                CompletableFuture<Void> permit = new CompletableFuture<>();
                TIMER.schedule(() -> permit.complete(null), wait, TimeUnit.NANOSECONDS);
                return permit;
            }
        }
    }
}
