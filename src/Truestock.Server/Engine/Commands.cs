using System.Text.Json;
using System.Text.Json.Serialization;
using Truestock.Core;
using Truestock.Server.Storage;

namespace Truestock.Server.Engine;

/// <summary>Payload of a reservation commit or release.</summary>
internal sealed record ReservationTransition(string ReservationId, string CorrelationId);

/// <summary>Payload of a safety-stock change.</summary>
internal sealed record SafetyStockChange(string Sku, string LocationId, long Quantity, string CorrelationId);

/// <summary>
/// The kinds of command the engine journals, and how each is decided. Live decisions and journal
/// replay both go through <see cref="Decide"/>-style functions here, so replay cannot drift from
/// what was decided live.
/// </summary>
internal static class CommandKinds
{
    public const string Events = "events";
    public const string CreateReservation = "reservation.create";
    public const string CommitReservation = "reservation.commit";
    public const string ReleaseReservation = "reservation.release";
    public const string PutLocation = "location.put";
    public const string PutChannel = "channel.put";
    public const string SetSafetyStock = "safety-stock.set";
    public const string Expire = "expire";
    public const string Prune = "prune";
    public const string SetDegradation = "channel.degradation";
    public const string SetVelocity = "channel.velocity";

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
    };

    public static EventOutcome[] DecideEvents(Shard shard, IReadOnlyList<StockEvent> events, DateTimeOffset now, Effects fx)
    {
        var results = new EventOutcome[events.Count];
        for (var i = 0; i < events.Count; i++)
        {
            results[i] = shard.ApplyEvent(events[i], now, fx);
        }
        return results;
    }

    /// <summary>Re-applies one journaled command with the time it was decided at.</summary>
    public static void Replay(Shard shard, JournalRecord record, Effects fx)
    {
        var now = record.RecordedAt;
        switch (record.Kind)
        {
            case Events:
                DecideEvents(shard, Read<StockEvent[]>(record), now, fx);
                break;
            case CreateReservation:
                shard.CreateReservation(Read<Core.CreateReservation>(record), now, fx);
                break;
            case CommitReservation:
                var commit = Read<ReservationTransition>(record);
                shard.CommitReservation(commit.ReservationId, now, commit.CorrelationId, fx);
                break;
            case ReleaseReservation:
                var release = Read<ReservationTransition>(record);
                shard.ReleaseReservation(release.ReservationId, now, release.CorrelationId, fx);
                break;
            case PutLocation:
                shard.PutLocation(Read<Location>(record));
                break;
            case PutChannel:
                shard.PutChannel(Read<Channel>(record));
                break;
            case SetSafetyStock:
                var s = Read<SafetyStockChange>(record);
                shard.SetSafetyStock(s.Sku, s.LocationId, s.Quantity, now, s.CorrelationId, fx);
                break;
            case Expire:
                shard.ExpireDue(now, fx);
                break;
            case Prune:
                shard.Prune(now, fx);
                break;
            case SetDegradation:
                shard.SetDegradation(Read<ChannelDegradation>(record));
                break;
            case SetVelocity:
                shard.SetVelocity(Read<ChannelVelocity>(record));
                break;
            default:
                throw new InvalidOperationException(
                    $"Journal record {record.Seq} has unknown kind '{record.Kind}': the data file was written by a newer Truestock.");
        }
    }

    private static T Read<T>(JournalRecord record) =>
        JsonSerializer.Deserialize<T>(record.Payload, Json)
        ?? throw new InvalidOperationException($"Journal record {record.Seq} ({record.Kind}) has an empty payload.");
}

/// <summary>A unit of work for the sequencing loop: decided on the loop thread, answered after the batch is durable.</summary>
internal abstract class EngineWork
{
    /// <summary>Journal kind, or null for a read.</summary>
    public abstract string? Kind { get; }

    /// <summary>Decides against the shard. Returns true when the command changed state by itself (master data).</summary>
    public abstract bool Run(Shard shard, DateTimeOffset now, Effects fx);

    public abstract string Payload();

    public abstract void Complete();

    public abstract void Fail(Exception error);
}

internal sealed class Work<TPayload, TResult>(
    string? kind,
    TPayload payload,
    Func<Shard, TPayload, DateTimeOffset, Effects, TResult> decide,
    Func<TResult, bool>? changed = null) : EngineWork
{
    private readonly TaskCompletionSource<TResult> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TResult? _result;

    public Task<TResult> Task => _done.Task;

    public override string? Kind => kind;

    public override bool Run(Shard shard, DateTimeOffset now, Effects fx)
    {
        _result = decide(shard, payload, now, fx);
        return changed?.Invoke(_result) ?? false;
    }

    public override string Payload() => JsonSerializer.Serialize(payload, CommandKinds.Json);

    public override void Complete() => _done.TrySetResult(_result!);

    public override void Fail(Exception error) => _done.TrySetException(error);
}
