using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Truestock.Core;
using Truestock.Server.Storage;
using Channel = Truestock.Core.Channel;

namespace Truestock.Server.Engine;

/// <summary>Thrown to a caller whose command could not be made durable; nothing of it was kept.</summary>
internal sealed class EngineUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>What this hub currently is for its database.</summary>
internal enum EngineRole
{
    /// <summary>Starting, or cut off from the journal: answers nothing until it has rebuilt its state.</summary>
    Recovering,
    /// <summary>Another hub writes; this one replays the journal as it grows and serves reads.</summary>
    Standby,
    /// <summary>The one process that decides and appends.</summary>
    Writer,
}

/// <summary>
/// The single writer. Requests enter a bounded queue; one loop takes a batch, decides every
/// command against the in-memory shard, appends the batch's journal records in one transaction
/// (group commit), waits for it to be durable, and only then answers the callers. Reads go
/// through the same loop and are answered after the batch they were decided in is durable, so a
/// read never shows a write that could still be lost.
/// On PostgreSQL a hub that cannot take the writer lock is a hot standby: the loop replays the
/// journal as it grows, serves reads with a known staleness, and takes over when the lock frees.
/// </summary>
internal sealed class Sequencer : IHostedService, IDisposable
{
    private readonly Channel<EngineWork> _queue;
    private readonly HubOptions _options;
    private readonly TimeProvider _time;
    private readonly HubMetrics _metrics;
    private readonly ILogger<Sequencer> _log;
    private readonly Effects _effects = new();
    private readonly Effects _replay = new() { Recording = false };
    private readonly List<EngineWork> _batch = [];
    private readonly List<PendingRecord> _records = [];
    private readonly List<(string Id, string ViewJson)> _archived = [];
    private readonly List<SyncChange> _syncChanges = [];
    private readonly HashSet<(string ChannelId, string Sku)> _touched = [];
    private readonly HashSet<(string ChannelId, string Sku)> _forced = [];
    private readonly Dictionary<string, (Channel Channel, DegradationBuffer Degradation, ChannelVelocity? Velocity)> _synced = new(StringComparer.Ordinal);
    private readonly List<Channel> _connected = [];
    private readonly Channels.SyncSignal _signal;
    private readonly AdoJournal _journal;
    private Shard _shard = new();
    private Task? _loop;
    private ITimer? _ticker;
    private Task _snapshotWrite = Task.CompletedTask;
    private long _snapshotSeq;
    private long _appliedSeq;
    private DateTimeOffset _lastPrune;
    private DateTimeOffset _lastMaintenance;
    private DateTimeOffset _caughtUpAt;
    private volatile EngineRole _role = EngineRole.Recovering;
    private volatile bool _running;
    private int _tickQueued;

    public Sequencer(IOptions<HubOptions> options, TimeProvider time, HubMetrics metrics, ILogger<Sequencer> log, Channels.SyncSignal signal)
    {
        _signal = signal;
        _options = options.Value;
        _time = time;
        _metrics = metrics;
        _log = log;
        _journal = string.IsNullOrWhiteSpace(_options.PostgresConnectionString)
            ? new SqliteJournal(_options.DataPath)
            : new PostgresJournal(_options.PostgresConnectionString);
        _metrics.EngineState = () => (_role.ToString().ToLowerInvariant(), Staleness.TotalSeconds);
        _queue = System.Threading.Channels.Channel.CreateBounded<EngineWork>(new BoundedChannelOptions(_options.QueueCapacityMax)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public EngineRole Role => _role;

    /// <summary>How far behind the writer a standby's reads may be (zero for the writer).</summary>
    public TimeSpan Staleness => _role == EngineRole.Writer ? TimeSpan.Zero : _time.GetUtcNow() - _caughtUpAt;

    /// <summary>The last journal sequence number reflected in memory.</summary>
    public long AppliedSeq => Interlocked.Read(ref _appliedSeq);

    internal AdoJournal Journal => _journal;

    /// <summary>The channels that have a connector, as of the last batch (replaced, never mutated).</summary>
    public IReadOnlyList<Channel> ConnectedChannels { get; private set; } = [];

    /// <summary>Queues a command; throws <see cref="EngineUnavailableException"/> when the queue is full or the engine is stopped.</summary>
    public Task<TResult> Submit<TPayload, TResult>(Work<TPayload, TResult> work)
    {
        if (!_running)
        {
            throw new EngineUnavailableException("The engine is stopped. Retry shortly.");
        }
        if (!_queue.Writer.TryWrite(work))
        {
            _metrics.QueueRejected();
            throw new EngineUnavailableException($"The engine queue is full ({_options.QueueCapacityMax} commands). Retry shortly.");
        }
        Interlocked.Increment(ref _metrics.QueueDepth);
        return work.Task;
    }

    /// <summary>Runs a read on the loop, against state that reflects every acknowledged write.</summary>
    public Task<T> Read<T>(Func<Shard, DateTimeOffset, T> read) =>
        Submit(new Work<object?, T>(null, null, (shard, _, now, _) => read(shard, now)));

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _lastPrune = _time.GetUtcNow();
        // Start-up recovery happens here, before the server listens, so the first answer is already exact.
        TryRestore();
        if (_role == EngineRole.Recovering && _journal is SqliteJournal)
        {
            // A local file that cannot be opened will not fix itself: say so at once.
            throw new InvalidOperationException($"Cannot open {_journal.Description}. Check the path and its permissions (Truestock:DataPath).");
        }
        _running = true;
        _loop = Task.Factory.StartNew(RunLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        _ticker = _time.CreateTimer(_ => Tick(), null, TimeSpan.FromMilliseconds(_options.ExpiryTickMilliseconds),
            TimeSpan.FromMilliseconds(_options.ExpiryTickMilliseconds));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _running = false;
        _ticker?.Dispose();
        _queue.Writer.TryComplete();
        if (_loop is not null)
        {
            await _loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        await _snapshotWrite.ConfigureAwait(false);
        if (_role == EngineRole.Writer && _journal.LastSeq > Interlocked.Read(ref _snapshotSeq))
        {
            // A snapshot at shutdown makes the next start-up replay nothing.
            WriteSnapshot(_journal.LastSeq, _shard.Export());
        }
    }

    public void Dispose()
    {
        _ticker?.Dispose();
        _journal.Dispose();
    }

    private void Tick()
    {
        // The tick only nudges the loop; the loop decides expiry (or catches up, or retries) itself.
        // One nudge at a time: ticks that fire while one waits (a stalled loop, a clock jump) add nothing.
        if (!_running || Interlocked.CompareExchange(ref _tickQueued, 1, 0) != 0)
        {
            return;
        }
        if (_queue.Writer.TryWrite(new Work<object?, int>(null, null, static (_, _, _, _) => 0)))
        {
            Interlocked.Increment(ref _metrics.QueueDepth);
        }
        else
        {
            Interlocked.Exchange(ref _tickQueued, 0);
        }
    }

    /// <summary>
    /// (Re)connects to the journal, takes the writer role if it can, and rebuilds the shard from
    /// the newest snapshot and the journal after it. Failures leave the hub recovering; the next
    /// tick tries again.
    /// </summary>
    private void TryRestore()
    {
        try
        {
            _journal.Open();
            var writer = _journal.TryBecomeWriter();
            Recover();
            _role = writer ? EngineRole.Writer : EngineRole.Standby;
            _caughtUpAt = _time.GetUtcNow();
            _log.LogInformation("Engine is {Role} on {Store} at journal seq {Seq}.", _role, _journal.Description, _appliedSeq);
        }
        catch (Exception ex) when (IsStorageFailure(ex))
        {
            _role = EngineRole.Recovering;
            _log.LogWarning("The journal ({Store}) is unreachable: {Message}. Retrying every {Ms} ms.",
                _journal.Description, ex.Message, _options.ExpiryTickMilliseconds);
        }
    }

    private static bool IsStorageFailure(Exception ex) =>
        ex is System.Data.Common.DbException or IOException or TimeoutException or System.Net.Sockets.SocketException
        || (ex is InvalidOperationException && ex.InnerException is System.Data.Common.DbException or IOException or System.Net.Sockets.SocketException);

    /// <summary>Rebuilds the shard from the newest snapshot and the journal after it.</summary>
    private void Recover()
    {
        var watch = Stopwatch.StartNew();
        var snapshot = _journal.ReadLatestSnapshot();
        Shard shard;
        long seq;
        if (snapshot is { } s)
        {
            var state = JsonSerializer.Deserialize<ShardState>(s.Json, CommandKinds.Json)
                ?? throw new InvalidOperationException("The newest snapshot is empty.");
            shard = Shard.Import(state, _options.IdempotencyRetentionDays);
            seq = s.LastSeq;
        }
        else
        {
            shard = new Shard(_options.IdempotencyRetentionDays);
            seq = 0;
        }
        Interlocked.Exchange(ref _snapshotSeq, seq);
        var replayed = ReplayAtStart(shard, ref seq, watch);
        _shard = shard;
        Interlocked.Exchange(ref _appliedSeq, seq);
        RememberSyncedChannels();
        _metrics.RecoveryMilliseconds = watch.ElapsedMilliseconds;
        _metrics.JournalSeq = seq;
        PublishGauges();
        _log.LogInformation("Recovered {Positions} positions from {Snapshot} plus {Replayed} journal commands in {Ms} ms ({Store}).",
            shard.PositionCount, snapshot is null ? "no snapshot" : $"the snapshot at seq {snapshot.Value.LastSeq}", replayed,
            watch.ElapsedMilliseconds, _journal.Description);
    }

    /// <summary>Replays the journal after <paramref name="seq"/> into <paramref name="shard"/> (a standby catching up: a few records at a time).</summary>
    private void CatchUp(Shard shard, ref long seq)
    {
        foreach (var record in _journal.ReadCommands(seq))
        {
            CommandKinds.Replay(shard, record, _replay);
            _replay.Clear();
            seq = record.Seq;
        }
    }

    /// <summary>
    /// Replays the journal after <paramref name="seq"/> into <paramref name="shard"/> at start-up.
    /// Reading the journal and decoding the payloads (JSON) were about 80 % of replay, all on this
    /// thread; now a second thread reads the journal in chunks, each chunk is decoded as a task on
    /// the thread pool (decoding touches no state, so chunks may decode side by side), and this
    /// thread decides the decoded chunks strictly in journal order, exactly as before. At most
    /// <see cref="ReplayChunksQueuedMax"/> chunks are ahead of this thread, which bounds the memory
    /// replay needs beyond the shard. With this, deciding is what takes the time: on a 2-million-record
    /// journal this thread waited for decoded chunks for under a tenth of the replay.
    /// </summary>
    private long ReplayAtStart(Shard shard, ref long seq, Stopwatch progress)
    {
        using var queue = new BlockingCollection<Task<DecodedCommand[]>>(ReplayChunksQueuedMax);
        using var stop = new CancellationTokenSource();
        var after = seq;
        var reader = Task.Factory.StartNew(() => ReadAhead(after, queue, stop.Token), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        long replayed = 0;
        try
        {
            foreach (var decoding in queue.GetConsumingEnumerable())
            {
                // A payload that cannot be decoded fails here, in journal order, with its own exception.
                foreach (var command in decoding.GetAwaiter().GetResult())
                {
                    CommandKinds.Apply(shard, command, _replay);
                    _replay.Clear();
                    seq = command.Seq;
                    if (++replayed % 1_000_000 == 0)
                    {
                        _log.LogInformation("Recovery: replayed {Count} journal records ({Rate:F0}/s)…", replayed, replayed / progress.Elapsed.TotalSeconds);
                    }
                }
            }
            // A failure to read the journal surfaces here with its own type, so a storage failure keeps the hub retrying.
            reader.GetAwaiter().GetResult();
        }
        finally
        {
            stop.Cancel();
            // The reader's connection must be closed before anything else uses the journal; its
            // failure, if any, was rethrown above or is moot after this thread's own.
            Task.WaitAny(reader);
        }
        return replayed;
    }

    /// <summary>Reads the journal after <paramref name="afterSeq"/> in chunks and starts decoding each, for <see cref="ReplayAtStart"/>.</summary>
    private void ReadAhead(long afterSeq, BlockingCollection<Task<DecodedCommand[]>> queue, CancellationToken stop)
    {
        try
        {
            var chunk = new List<JournalRecord>(ReplayChunkRecordsMax);
            long chars = 0;
            foreach (var record in _journal.ReadCommands(afterSeq))
            {
                chunk.Add(record);
                chars += record.Payload.Length;
                if (chunk.Count == ReplayChunkRecordsMax || chars >= ReplayChunkPayloadCharsMax)
                {
                    queue.Add(Decode([.. chunk]), stop);
                    chunk.Clear();
                    chars = 0;
                }
            }
            if (chunk.Count > 0)
            {
                queue.Add(Decode([.. chunk]), stop);
            }
        }
        finally
        {
            queue.CompleteAdding();
        }

        static Task<DecodedCommand[]> Decode(JournalRecord[] records) => Task.Run(() => Array.ConvertAll(records, CommandKinds.Decode));
    }

    /// <summary>Most records in one replay chunk (fewer hand-overs between threads, less waiting).</summary>
    private const int ReplayChunkRecordsMax = 256;

    /// <summary>A replay chunk is closed early once its payloads reach this many characters (about three 1,000-event batches).</summary>
    private const int ReplayChunkPayloadCharsMax = 1 << 20;

    /// <summary>Most replay chunks read or being decoded ahead of the deciding thread.</summary>
    private const int ReplayChunksQueuedMax = 8;

    private async Task RunLoop()
    {
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            try
            {
                RunBatch(reader);
            }
            catch (Exception ex)
            {
                // A failed journal write leaves the in-memory state ahead of the disk. The callers
                // are told 503; the hub then rebuilds from what is durable, so nothing unacknowledged stays.
                _metrics.JournalFailure();
                _log.LogError(ex, "Journal batch failed; {Count} command(s) answered 503. Rebuilding state from the journal.", _batch.Count);
                foreach (var work in _batch)
                {
                    work.Fail(new EngineUnavailableException("The write could not be made durable; nothing was applied. Retry.", ex));
                }
                _batch.Clear();
                _role = EngineRole.Recovering;
                TryRestore();
            }
        }
    }

    private void RunBatch(ChannelReader<EngineWork> reader)
    {
        // This batch serves any queued nudge, so the timer may queue the next one.
        Interlocked.Exchange(ref _tickQueued, 0);
        _batch.Clear();
        _records.Clear();
        _effects.Clear();
        var now = _time.GetUtcNow();
        if (_role != EngineRole.Writer)
        {
            MaintainWithoutWriting(now);
        }
        if (_role != EngineRole.Writer)
        {
            ServeWithoutWriting(reader, now);
            return;
        }

        // Expiry is decided first, with the batch's time, so every command in the batch sees it.
        var expired = _shard.ExpireDue(now, _effects);
        if (expired > 0)
        {
            _records.Add(new PendingRecord(now, CommandKinds.Expire, "{}", 0, _effects.Ledger.Count, 0, _effects.Exceptions.Count));
            _metrics.Expired(expired);
        }
        if (now - _lastPrune > TimeSpan.FromHours(1))
        {
            _lastPrune = now;
            if (_shard.Prune(now, _effects) > 0)
            {
                _records.Add(new PendingRecord(now, CommandKinds.Prune, "{}", _effects.Ledger.Count, _effects.Ledger.Count,
                    _effects.Exceptions.Count, _effects.Exceptions.Count));
            }
        }

        while (_batch.Count < _options.BatchCommandsMax && reader.TryRead(out var work))
        {
            Interlocked.Decrement(ref _metrics.QueueDepth);
            _batch.Add(work);
            var ledgerFrom = _effects.Ledger.Count;
            var exceptionsFrom = _effects.Exceptions.Count;
            bool changed;
            try
            {
                changed = work.Run(_shard, now, _effects);
            }
            catch (Exception ex)
            {
                // A decision that throws is a bug; the shard may be half-changed, so the whole batch
                // is failed and state is rebuilt from the journal.
                throw new InvalidOperationException($"Deciding a {work.Kind ?? "read"} command failed.", ex);
            }
            if (work.Kind is not null && (changed || _effects.Ledger.Count > ledgerFrom || _effects.Exceptions.Count > exceptionsFrom))
            {
                _records.Add(new PendingRecord(now, work.Kind, work.Payload(), ledgerFrom, _effects.Ledger.Count, exceptionsFrom, _effects.Exceptions.Count));
            }
        }

        if (_records.Count > 0)
        {
            var watch = Stopwatch.StartNew();
            _archived.Clear();
            foreach (var r in _effects.ForgottenReservations)
            {
                _archived.Add((r.Id, JsonSerializer.Serialize(Http.Views.Of(r), CommandKinds.Json)));
            }
            CollectSyncChanges(now);
            AppendWithRetry(now);
            if (_syncChanges.Count > 0)
            {
                _signal.Notify();
            }
            _metrics.Commit(watch.Elapsed.TotalSeconds, _batch.Count);
            _metrics.JournalSeq = _journal.LastSeq;
            Interlocked.Exchange(ref _appliedSeq, _journal.LastSeq);
            foreach (var x in _effects.Exceptions)
            {
                _metrics.Exception(x.Type, x.Quantity);
            }
        }
        foreach (var work in _batch)
        {
            work.Complete();
        }
        _batch.Clear();
        PublishGauges();
        MaybeSnapshot();
    }

    /// <summary>
    /// A standby catches up with the journal and tries to take the writer lock; a recovering hub
    /// retries its connection. At most once per tick interval, however many requests arrive.
    /// </summary>
    private void MaintainWithoutWriting(DateTimeOffset now)
    {
        if (now - _lastMaintenance < TimeSpan.FromMilliseconds(_options.ExpiryTickMilliseconds))
        {
            return;
        }
        _lastMaintenance = now;
        if (_role == EngineRole.Recovering)
        {
            TryRestore();
            return;
        }
        try
        {
            var seq = _appliedSeq;
            CatchUp(_shard, ref seq);
            Interlocked.Exchange(ref _appliedSeq, seq);
            _caughtUpAt = now;
            if (_journal.TryBecomeWriter())
            {
                // Holding the lock, nobody else can append: what is in the journal now is everything.
                seq = _appliedSeq;
                CatchUp(_shard, ref seq);
                Interlocked.Exchange(ref _appliedSeq, seq);
                _role = EngineRole.Writer;
                RememberSyncedChannels();
                _log.LogWarning("Took over as writer at journal seq {Seq}.", seq);
            }
            PublishGauges();
        }
        catch (Exception ex) when (IsStorageFailure(ex))
        {
            _log.LogWarning("Standby lost the journal ({Message}); reconnecting.", ex.Message);
            _role = EngineRole.Recovering;
        }
    }

    private void ServeWithoutWriting(ChannelReader<EngineWork> reader, DateTimeOffset now)
    {
        while (_batch.Count < _options.BatchCommandsMax && reader.TryRead(out var work))
        {
            Interlocked.Decrement(ref _metrics.QueueDepth);
            if (work.Kind is not null || _role == EngineRole.Recovering)
            {
                work.Fail(new EngineUnavailableException(_role == EngineRole.Standby
                    ? "This hub is a standby: another hub holds the writer role on this database. Send writes to the writer, or retry; a standby takes over when the writer stops."
                    : "The hub is reconnecting to its journal; nothing was applied. Retry shortly."));
                continue;
            }
            work.Run(_shard, now, _effects);
            work.Complete();
        }
    }

    /// <summary>
    /// Appends the batch. A transaction the database aborted as a deadlock victim or a
    /// serialization failure changed nothing (counters move only on commit), so the same batch is
    /// appended again, a bounded number of times, before the batch is failed.
    /// </summary>
    private void AppendWithRetry(DateTimeOffset now)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                _journal.Append(_records, _effects, _archived, _syncChanges, now);
                return;
            }
            catch (System.Data.Common.DbException ex) when (attempt < AppendAttemptsMax && _journal.IsRetryable(ex))
            {
                _log.LogWarning("Journal batch aborted by the database ({Message}); appending it again (attempt {Attempt} of {Max}).",
                    ex.Message, attempt + 1, AppendAttemptsMax);
            }
        }
    }

    private const int AppendAttemptsMax = 3;

    /// <summary>
    /// Works out which (channel, SKU) pairs of connected channels this batch may have changed, and
    /// their ATS now, for the publication outbox. A channel that is new, replaced (PUT) or whose
    /// degradation buffer changed is resynchronised in full: every SKU stocked at its locations.
    /// The outbox keeps only real changes, so recomputing an unchanged ATS costs a no-op upsert.
    /// </summary>
    private void CollectSyncChanges(DateTimeOffset now)
    {
        _syncChanges.Clear();
        _touched.Clear();
        _forced.Clear();
        _connected.Clear();
        var changedChannels = false;
        foreach (var channel in _shard.Channels)
        {
            if (channel.ConnectorJson is null)
            {
                continue;
            }
            _connected.Add(channel);
            var degradation = _shard.DegradationOf(channel.Id);
            var velocity = _shard.VelocityOf(channel.Id);
            if (_synced.TryGetValue(channel.Id, out var seen) && ReferenceEquals(seen.Channel, channel) && seen.Degradation == degradation
                && ReferenceEquals(seen.Velocity, velocity))
            {
                continue;
            }
            changedChannels = true;
            // A new endpoint (or sourcing list) must be told every value, changed or not.
            var force = seen.Channel is { } before && (before.ConnectorJson != channel.ConnectorJson || !before.Locations.SequenceEqual(channel.Locations));
            _synced[channel.Id] = (channel, degradation, velocity);
            foreach (var sku in _shard.Skus)
            {
                foreach (var p in _shard.PositionsOf(sku))
                {
                    if (channel.Locations.Contains(p.LocationId))
                    {
                        if (force)
                        {
                            _forced.Add((channel.Id, sku));
                        }
                        _touched.Add((channel.Id, sku));
                        break;
                    }
                }
            }
        }
        if (_connected.Count == 0)
        {
            if (_synced.Count > 0)
            {
                _synced.Clear();
                ConnectedChannels = [];
            }
            return;
        }
        if (changedChannels || _synced.Count != _connected.Count)
        {
            RememberSyncedChannels();
        }
        foreach (var entry in _effects.Ledger)
        {
            foreach (var channel in _connected)
            {
                // A velocity buffer depends on the SKU's sales everywhere, so a sale at any location
                // changes the ATS of a velocity channel, even one that does not source that location.
                if (channel.Locations.Contains(entry.LocationId) || _shard.VelocityOf(channel.Id) is not null)
                {
                    _touched.Add((channel.Id, entry.Sku));
                }
            }
        }
        foreach (var (channelId, sku) in _touched)
        {
            _syncChanges.Add(new SyncChange(channelId, sku, _shard.Ats(_shard.FindChannel(channelId)!, sku, now), _forced.Contains((channelId, sku))));
        }
        // Rows are written in one order everywhere (channel, then SKU), so that the publisher's
        // acknowledgements and this batch can never wait on each other's row locks in a cycle.
        _syncChanges.Sort(static (x, y) =>
        {
            var c = string.CompareOrdinal(x.ChannelId, y.ChannelId);
            return c != 0 ? c : string.CompareOrdinal(x.Sku, y.Sku);
        });
    }

    /// <summary>Takes the shard's connected channels as already synchronised (after recovery: the outbox is durable).</summary>
    private void RememberSyncedChannels()
    {
        _synced.Clear();
        var connected = new List<Channel>();
        foreach (var channel in _shard.Channels)
        {
            if (channel.ConnectorJson is not null)
            {
                _synced[channel.Id] = (channel, _shard.DegradationOf(channel.Id), _shard.VelocityOf(channel.Id));
                connected.Add(channel);
            }
        }
        ConnectedChannels = connected;
    }

    /// <summary>True once the engine has forgotten ids: handlers then look ids up in the journal first.</summary>
    public bool HasForgotten { get; private set; }

    private void PublishGauges()
    {
        HasForgotten = _shard.HasForgotten;
        _metrics.Positions = _shard.PositionCount;
        _metrics.Reservations = _shard.ReservationCount;
    }

    private void MaybeSnapshot()
    {
        var seq = _journal.LastSeq;
        if (seq - Interlocked.Read(ref _snapshotSeq) < _options.SnapshotEveryCommands || !_snapshotWrite.IsCompleted)
        {
            return;
        }
        // Export copies the state on the loop thread; serialising and writing it happens beside the loop.
        var state = _shard.Export();
        Interlocked.Exchange(ref _snapshotSeq, seq);
        _snapshotWrite = Task.Run(() =>
        {
            try
            {
                WriteSnapshot(seq, state);
            }
            catch (Exception ex)
            {
                // A missed snapshot only makes the next start-up replay more of the journal; the
                // journal itself is intact, so the hub keeps serving and retries at the next interval.
                _log.LogError(ex, "Writing the snapshot at journal seq {Seq} failed; will retry after more commands.", seq);
                Interlocked.Exchange(ref _snapshotSeq, 0);
            }
        });
    }

    private void WriteSnapshot(long seq, ShardState state)
    {
        var watch = Stopwatch.StartNew();
        var json = JsonSerializer.SerializeToUtf8Bytes(state, CommandKinds.Json);
        _journal.WriteSnapshot(seq, _time.GetUtcNow(), json);
        _log.LogInformation("Snapshot at journal seq {Seq}: {Positions} positions, {Bytes} bytes of JSON, {Ms} ms.",
            seq, state.Positions.Count, json.Length, watch.ElapsedMilliseconds);
    }
}
