using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Truestock.Core;
using Truestock.Server.Storage;

namespace Truestock.Server.Engine;

/// <summary>Thrown to a caller whose command could not be made durable; nothing of it was kept.</summary>
internal sealed class EngineUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The single writer. Requests enter a bounded queue; one loop takes a batch, decides every
/// command against the in-memory shard, appends the batch's journal records in one transaction
/// (group commit), waits for the fsync, and only then answers the callers. Reads go through the
/// same loop and are answered after the batch they were decided in is durable, so a read never
/// shows a write that could still be lost.
/// </summary>
internal sealed class Sequencer : IHostedService, IDisposable
{
    private readonly System.Threading.Channels.Channel<EngineWork> _queue;
    private readonly HubOptions _options;
    private readonly TimeProvider _time;
    private readonly HubMetrics _metrics;
    private readonly ILogger<Sequencer> _log;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly Effects _effects = new();
    private readonly List<EngineWork> _batch = [];
    private readonly List<PendingRecord> _records = [];
    private SqliteJournal? _journal;
    private Shard _shard = new();
    private Task? _loop;
    private ITimer? _ticker;
    private Task _snapshotWrite = Task.CompletedTask;
    private long _snapshotSeq;
    private DateTimeOffset _lastPrune;
    private volatile bool _ready;

    public Sequencer(IOptions<HubOptions> options, TimeProvider time, HubMetrics metrics, ILogger<Sequencer> log, IHostApplicationLifetime lifetime)
    {
        _options = options.Value;
        _time = time;
        _metrics = metrics;
        _log = log;
        _lifetime = lifetime;
        _queue = System.Threading.Channels.Channel.CreateBounded<EngineWork>(new BoundedChannelOptions(_options.QueueCapacityMax)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public bool Ready => _ready;

    internal SqliteJournal Journal => _journal ?? throw new InvalidOperationException("The journal is not open yet.");

    /// <summary>Queues a command; throws <see cref="EngineUnavailableException"/> when the queue is full or the engine is down.</summary>
    public Task<TResult> Submit<TPayload, TResult>(Work<TPayload, TResult> work)
    {
        if (!_ready)
        {
            throw new EngineUnavailableException("The engine is not ready (starting, recovering or stopped). Retry shortly.");
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
        _journal = new SqliteJournal(_options.DataPath);
        Recover();
        _lastPrune = _time.GetUtcNow();
        _loop = Task.Factory.StartNew(RunLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        _ticker = _time.CreateTimer(_ => Tick(), null, TimeSpan.FromMilliseconds(_options.ExpiryTickMilliseconds),
            TimeSpan.FromMilliseconds(_options.ExpiryTickMilliseconds));
        _ready = true;
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _ready = false;
        _ticker?.Dispose();
        _queue.Writer.TryComplete();
        if (_loop is not null)
        {
            await _loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        await _snapshotWrite.ConfigureAwait(false);
        if (_journal is not null && _journal.LastSeq > _snapshotSeq)
        {
            // A snapshot at shutdown makes the next start-up replay nothing.
            WriteSnapshot(_journal.LastSeq, _shard.Export());
        }
    }

    public void Dispose()
    {
        _ticker?.Dispose();
        _journal?.Dispose();
    }

    private void Tick()
    {
        // The tick only nudges the loop; the loop decides expiry itself with the batch's time.
        if (_ready && _queue.Writer.TryWrite(new Work<object?, int>(null, null, static (_, _, _, _) => 0)))
        {
            Interlocked.Increment(ref _metrics.QueueDepth);
        }
    }

    /// <summary>Rebuilds the shard from the newest snapshot and the journal after it.</summary>
    private void Recover()
    {
        var journal = Journal;
        var watch = Stopwatch.StartNew();
        var snapshot = journal.ReadLatestSnapshot();
        Shard shard;
        if (snapshot is { } s)
        {
            var state = JsonSerializer.Deserialize<ShardState>(s.Json, CommandKinds.Json)
                ?? throw new InvalidOperationException("The newest snapshot is empty.");
            shard = Shard.Import(state, _options.IdempotencyRetentionDays);
            _snapshotSeq = s.LastSeq;
        }
        else
        {
            shard = new Shard(_options.IdempotencyRetentionDays);
            _snapshotSeq = 0;
        }
        var replay = new Effects { Recording = false };
        long replayed = 0;
        foreach (var record in journal.ReadCommands(_snapshotSeq))
        {
            CommandKinds.Replay(shard, record, replay);
            replay.Clear();
            if (++replayed % 1_000_000 == 0)
            {
                _log.LogInformation("Recovery: replayed {Count} journal records ({Rate:F0}/s)…", replayed, replayed / watch.Elapsed.TotalSeconds);
            }
        }
        _shard = shard;
        _metrics.RecoveryMilliseconds = watch.ElapsedMilliseconds;
        _metrics.JournalSeq = journal.LastSeq;
        PublishGauges();
        _log.LogInformation("Recovered {Positions} positions from snapshot at {SnapshotSeq} plus {Replayed} journal records in {Ms} ms ({Path}).",
            shard.PositionCount, _snapshotSeq, replayed, watch.ElapsedMilliseconds, _options.DataPath);
    }

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
                // were told 503; rebuild from what is durable so that nothing unacknowledged stays.
                _metrics.JournalFailure();
                _log.LogError(ex, "Journal batch failed; {Count} command(s) answered 503. Rebuilding state from the journal.", _batch.Count);
                foreach (var work in _batch)
                {
                    work.Fail(new EngineUnavailableException("The write could not be made durable; nothing was applied. Retry.", ex));
                }
                _batch.Clear();
                try
                {
                    Recover();
                }
                catch (Exception fatal)
                {
                    _ready = false;
                    _log.LogCritical(fatal, "Could not rebuild state from the journal; stopping the hub.");
                    _lifetime.StopApplication();
                    throw;
                }
            }
        }
    }

    private void RunBatch(ChannelReader<EngineWork> reader)
    {
        _batch.Clear();
        _records.Clear();
        _effects.Clear();
        var now = _time.GetUtcNow();

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
            if (_shard.Prune(now) > 0)
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
                // is failed and state is rebuilt from the journal by the caller of this method.
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
            Journal.Append(_records, _effects);
            _metrics.Commit(watch.Elapsed.TotalSeconds, _batch.Count);
            _metrics.JournalSeq = Journal.LastSeq;
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

    private void PublishGauges()
    {
        _metrics.Positions = _shard.PositionCount;
        _metrics.Reservations = _shard.ReservationCount;
    }

    private void MaybeSnapshot()
    {
        var seq = Journal.LastSeq;
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
        Journal.WriteSnapshot(seq, _time.GetUtcNow(), json);
        _log.LogInformation("Snapshot at journal seq {Seq}: {Positions} positions, {Bytes} bytes of JSON, {Ms} ms.",
            seq, state.Positions.Count, json.Length, watch.ElapsedMilliseconds);
    }
}
