using System.Globalization;
using System.Text;

namespace Truestock.Server;

/// <summary>
/// The hub's counters and histograms, rendered in the Prometheus text format. Counters are
/// updated with Interlocked from the loop and request threads; no library is needed for this.
/// </summary>
internal sealed class HubMetrics
{
    private static readonly double[] LatencyBucketsSeconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
    // Labels come from the enums themselves, so a new status or outcome can never index past them.
    private static readonly string[] EventStatuses = Enum.GetValues<Core.EventStatus>().Select(Core.Shard.StatusName).ToArray();
    private static readonly string[] ReservationOutcomes = Enum.GetValues<Core.ReservationResult>()
        .Select(r => System.Text.RegularExpressions.Regex.Replace(r.ToString(), "(?<=[a-z])([A-Z])", "_$1").ToLowerInvariant()).ToArray();

    private readonly long[] _events = new long[EventStatuses.Length];
    private readonly long[] _reservations = new long[ReservationOutcomes.Length];
    private readonly Histogram _commit = new(LatencyBucketsSeconds);
    private readonly Histogram _batchSize = new([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096]);
    private long _exceptionsOversell;
    private long _exceptionsOther;
    private long _oversoldUnits;
    private long _journalFailures;
    private long _queueRejected;
    private long _expired;
    private long _brokerAcked;
    private long _brokerDeadLettered;
    private long _brokerRequeued;

    public long QueueDepth;
    public long Positions;
    public long Reservations;
    public long JournalSeq;
    public long RecoveryMilliseconds;

    /// <summary>Reads the engine's role and standby staleness at scrape time.</summary>
    public Func<(string Role, double StalenessSeconds)>? EngineState { get; set; }

    /// <summary>Further sections (ingestion paths) appended to the page at scrape time.</summary>
    public List<Action<StringBuilder>> Sections { get; } = [];

    /// <summary>Reads the channel publishers' figures at scrape time.</summary>
    public Func<IEnumerable<Channels.ChannelSyncStats>>? ChannelStats { get; set; }

    public void Event(int status) => Interlocked.Increment(ref _events[status]);

    public void Reservation(int outcome) => Interlocked.Increment(ref _reservations[outcome]);

    public void Commit(double seconds, int commands)
    {
        _commit.Observe(seconds);
        _batchSize.Observe(commands);
    }

    public void Exception(string type, long quantity)
    {
        if (type == Core.ExceptionTypes.Oversell)
        {
            Interlocked.Increment(ref _exceptionsOversell);
            Interlocked.Add(ref _oversoldUnits, quantity);
        }
        else
        {
            Interlocked.Increment(ref _exceptionsOther);
        }
    }

    public void JournalFailure() => Interlocked.Increment(ref _journalFailures);

    public void QueueRejected() => Interlocked.Increment(ref _queueRejected);

    public void Expired(int count) => Interlocked.Add(ref _expired, count);

    public void BrokerMessage(string outcome)
    {
        switch (outcome)
        {
            case "acked":
                Interlocked.Increment(ref _brokerAcked);
                break;
            case "dead_lettered":
                Interlocked.Increment(ref _brokerDeadLettered);
                break;
            case "requeued":
                Interlocked.Increment(ref _brokerRequeued);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(outcome), outcome, "Unknown broker outcome.");
        }
    }

    public string Render()
    {
        var sb = new StringBuilder(4096);
        Header(sb, "truestock_events_total", "counter", "Events decided, by status.");
        for (var i = 0; i < EventStatuses.Length; i++)
        {
            Line(sb, $"truestock_events_total{{status=\"{EventStatuses[i]}\"}}", Interlocked.Read(ref _events[i]));
        }
        Header(sb, "truestock_reservation_requests_total", "counter", "Reservation commands, by outcome.");
        for (var i = 0; i < ReservationOutcomes.Length; i++)
        {
            Line(sb, $"truestock_reservation_requests_total{{outcome=\"{ReservationOutcomes[i]}\"}}", Interlocked.Read(ref _reservations[i]));
        }
        Header(sb, "truestock_reservations_expired_total", "counter", "Held reservations that expired.");
        Line(sb, "truestock_reservations_expired_total", Interlocked.Read(ref _expired));
        Header(sb, "truestock_broker_messages_total", "counter", "RabbitMQ messages by outcome: acked after durable, dead-lettered, requeued.");
        Line(sb, "truestock_broker_messages_total{outcome=\"acked\"}", Interlocked.Read(ref _brokerAcked));
        Line(sb, "truestock_broker_messages_total{outcome=\"dead_lettered\"}", Interlocked.Read(ref _brokerDeadLettered));
        Line(sb, "truestock_broker_messages_total{outcome=\"requeued\"}", Interlocked.Read(ref _brokerRequeued));
        Header(sb, "truestock_oversells_total", "counter", "Oversell exceptions raised.");
        Line(sb, "truestock_oversells_total", Interlocked.Read(ref _exceptionsOversell));
        Header(sb, "truestock_oversold_units_total", "counter", "Units oversold, summed over oversell exceptions.");
        Line(sb, "truestock_oversold_units_total", Interlocked.Read(ref _oversoldUnits));
        Header(sb, "truestock_exceptions_total", "counter", "Other exceptions raised (clamps, negative onHand, sequence gaps).");
        Line(sb, "truestock_exceptions_total", Interlocked.Read(ref _exceptionsOther));
        Header(sb, "truestock_journal_failures_total", "counter", "Journal batches that failed to commit (their callers got 503).");
        Line(sb, "truestock_journal_failures_total", Interlocked.Read(ref _journalFailures));
        Header(sb, "truestock_queue_rejected_total", "counter", "Commands refused because the engine queue was full.");
        Line(sb, "truestock_queue_rejected_total", Interlocked.Read(ref _queueRejected));
        Header(sb, "truestock_queue_depth", "gauge", "Commands waiting for the sequencing loop.");
        Line(sb, "truestock_queue_depth", Interlocked.Read(ref QueueDepth));
        Header(sb, "truestock_positions", "gauge", "Positions held in memory.");
        Line(sb, "truestock_positions", Interlocked.Read(ref Positions));
        Header(sb, "truestock_reservations", "gauge", "Reservations remembered (any state).");
        Line(sb, "truestock_reservations", Interlocked.Read(ref Reservations));
        Header(sb, "truestock_journal_seq", "gauge", "Sequence number of the last durable journal command.");
        Line(sb, "truestock_journal_seq", Interlocked.Read(ref JournalSeq));
        Header(sb, "truestock_recovery_seconds", "gauge", "Time the last start-up spent loading the snapshot and replaying the journal.");
        sb.Append("truestock_recovery_seconds ").Append((Interlocked.Read(ref RecoveryMilliseconds) / 1000.0).ToString(CultureInfo.InvariantCulture)).Append('\n');
        if (EngineState is { } state)
        {
            var (role, staleness) = state();
            Header(sb, "truestock_engine_role", "gauge", "1 for this hub's current role: writer, standby or recovering.");
            foreach (var r in new[] { "writer", "standby", "recovering" })
            {
                Line(sb, $"truestock_engine_role{{role=\"{r}\"}}", r == role ? 1 : 0);
            }
            Header(sb, "truestock_standby_staleness_seconds", "gauge", "How far behind the journal a standby's reads may be (0 on the writer).");
            sb.Append("truestock_standby_staleness_seconds ").Append(staleness.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        if (ChannelStats?.Invoke().OrderBy(c => c.ChannelId, StringComparer.Ordinal).ToList() is { Count: > 0 } channels)
        {
            RenderChannels(sb, channels);
        }
        foreach (var section in Sections)
        {
            section(sb);
        }
        Header(sb, "truestock_journal_commit_seconds", "histogram", "Time to append and fsync one group-commit batch.");
        _commit.Render(sb, "truestock_journal_commit_seconds");
        Header(sb, "truestock_batch_commands", "histogram", "Commands per group-commit batch.");
        _batchSize.Render(sb, "truestock_batch_commands");
        return sb.ToString();
    }

    private static void RenderChannels(StringBuilder sb, List<Channels.ChannelSyncStats> channels)
    {
        static string L(Channels.ChannelSyncStats c) => $"{{channel=\"{c.ChannelId}\",kind=\"{c.Kind}\"}}";
        Header(sb, "truestock_channel_backlog", "gauge", "Publications pending for the channel (coalesced: one per SKU).");
        channels.ForEach(c => Line(sb, "truestock_channel_backlog" + L(c), Interlocked.Read(ref c.Backlog)));
        Header(sb, "truestock_channel_oldest_pending_seconds", "gauge", "Age of the oldest change the channel has not acknowledged.");
        channels.ForEach(c => sb.Append("truestock_channel_oldest_pending_seconds").Append(L(c)).Append(' ')
            .Append(c.OldestPendingSeconds.ToString(CultureInfo.InvariantCulture)).Append('\n'));
        Header(sb, "truestock_channel_dead_letters", "gauge", "Publications in the channel's dead-letter list.");
        channels.ForEach(c => Line(sb, "truestock_channel_dead_letters" + L(c), Interlocked.Read(ref c.DeadLetters)));
        Header(sb, "truestock_channel_degraded", "gauge", "1 while the channel's degradation buffer is applied.");
        channels.ForEach(c => Line(sb, "truestock_channel_degraded" + L(c), c.Degradation.IsNone ? 0 : 1));
        Header(sb, "truestock_channel_publications_total", "counter", "Publications by outcome: published, retried, dead_lettered.");
        foreach (var c in channels)
        {
            var labels = $"channel=\"{c.ChannelId}\",kind=\"{c.Kind}\"";
            Line(sb, $"truestock_channel_publications_total{{{labels},outcome=\"published\"}}", Interlocked.Read(ref c.Published));
            Line(sb, $"truestock_channel_publications_total{{{labels},outcome=\"retried\"}}", Interlocked.Read(ref c.Retried));
            Line(sb, $"truestock_channel_publications_total{{{labels},outcome=\"dead_lettered\"}}", Interlocked.Read(ref c.DeadLettered));
        }
        Header(sb, "truestock_channel_calls_total", "counter", "HTTP calls made to the channel by its connector.");
        channels.ForEach(c => Line(sb, "truestock_channel_calls_total" + L(c), Interlocked.Read(ref c.Counters.Calls)));
        Header(sb, "truestock_channel_throttles_total", "counter", "Channel answers that were throttle signals (429, THROTTLED, quota).");
        channels.ForEach(c => Line(sb, "truestock_channel_throttles_total" + L(c), Interlocked.Read(ref c.Counters.Throttles)));
        Header(sb, "truestock_channel_failures_total", "counter", "Failed calls to the channel (transport errors, 5xx, other 4xx).");
        channels.ForEach(c => Line(sb, "truestock_channel_failures_total" + L(c), Interlocked.Read(ref c.Counters.Failures)));
        Header(sb, "truestock_channel_publication_latency_seconds", "histogram", "From the ledger commit of a change to the channel's acknowledgement.");
        foreach (var c in channels)
        {
            c.Latency.Render(sb, "truestock_channel_publication_latency_seconds", $"channel=\"{c.ChannelId}\",kind=\"{c.Kind}\",");
        }
    }

    private static void Header(StringBuilder sb, string name, string type, string help) =>
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
          .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Line(StringBuilder sb, string series, long value) =>
        sb.Append(series).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');

    internal sealed class Histogram(double[] bounds)
    {
        private readonly long[] _counts = new long[bounds.Length + 1];
        private long _count;
        private long _sumMicros;

        public void Observe(double value)
        {
            var i = 0;
            while (i < bounds.Length && value > bounds[i])
            {
                i++;
            }
            Interlocked.Increment(ref _counts[i]);
            Interlocked.Increment(ref _count);
            Interlocked.Add(ref _sumMicros, (long)(value * 1_000_000));
        }

        /// <summary>Renders the buckets; <paramref name="labels"/> (e.g. <c>channel="web",</c>) prefixes every series' labels.</summary>
        public void Render(StringBuilder sb, string name, string labels = "")
        {
            long cumulative = 0;
            for (var i = 0; i < bounds.Length; i++)
            {
                cumulative += Interlocked.Read(ref _counts[i]);
                sb.Append(name).Append("_bucket{").Append(labels).Append("le=\"").Append(bounds[i].ToString(CultureInfo.InvariantCulture)).Append("\"} ")
                  .Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
            cumulative += Interlocked.Read(ref _counts[^1]);
            var braces = labels.Length == 0 ? "" : "{" + labels.TrimEnd(',') + "}";
            sb.Append(name).Append("_bucket{").Append(labels).Append("le=\"+Inf\"} ").Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
            sb.Append(name).Append("_sum").Append(braces).Append(' ').Append((Interlocked.Read(ref _sumMicros) / 1_000_000.0).ToString(CultureInfo.InvariantCulture)).Append('\n');
            sb.Append(name).Append("_count").Append(braces).Append(' ').Append(Interlocked.Read(ref _count).ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        public long Count => Interlocked.Read(ref _count);
    }
}
