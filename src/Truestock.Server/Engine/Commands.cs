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
    public static void Replay(Shard shard, JournalRecord record, Effects fx) => Apply(shard, Decode(record), fx);

    /// <summary>
    /// Turns a journal record into its typed payload. Decoding touches no state, so recovery runs it
    /// beside the loop (see <see cref="Sequencer"/>); <see cref="Apply"/> then decides in journal order.
    /// </summary>
    public static DecodedCommand Decode(JournalRecord record)
    {
        object? payload = record.Kind switch
        {
            Events => JournalPayloads.ReadEvents(record.Payload) ?? Read<StockEvent[]>(record),
            CreateReservation => JournalPayloads.ReadCreateReservation(record.Payload) ?? Read<Core.CreateReservation>(record),
            CommitReservation or ReleaseReservation => JournalPayloads.ReadTransition(record.Payload) ?? Read<ReservationTransition>(record),
            PutLocation => Read<Location>(record),
            PutChannel => Read<Channel>(record),
            SetSafetyStock => Read<SafetyStockChange>(record),
            Expire or Prune => null,
            SetDegradation => Read<ChannelDegradation>(record),
            SetVelocity => Read<ChannelVelocity>(record),
            _ => throw new InvalidOperationException(
                $"Journal record {record.Seq} has unknown kind '{record.Kind}': the data file was written by a newer Truestock."),
        };
        return new DecodedCommand(record.Seq, record.RecordedAt, record.Kind, payload);
    }

    /// <summary>Decides a decoded command again, with the time it was decided at.</summary>
    public static void Apply(Shard shard, DecodedCommand command, Effects fx)
    {
        var now = command.RecordedAt;
        switch (command.Kind)
        {
            case Events:
                DecideEvents(shard, (StockEvent[])command.Payload!, now, fx);
                break;
            case CreateReservation:
                shard.CreateReservation((Core.CreateReservation)command.Payload!, now, fx);
                break;
            case CommitReservation:
                var commit = (ReservationTransition)command.Payload!;
                shard.CommitReservation(commit.ReservationId, now, commit.CorrelationId, fx);
                break;
            case ReleaseReservation:
                var release = (ReservationTransition)command.Payload!;
                shard.ReleaseReservation(release.ReservationId, now, release.CorrelationId, fx);
                break;
            case PutLocation:
                shard.PutLocation((Location)command.Payload!);
                break;
            case PutChannel:
                shard.PutChannel((Channel)command.Payload!);
                break;
            case SetSafetyStock:
                var s = (SafetyStockChange)command.Payload!;
                shard.SetSafetyStock(s.Sku, s.LocationId, s.Quantity, now, s.CorrelationId, fx);
                break;
            case Expire:
                shard.ExpireDue(now, fx);
                break;
            case Prune:
                shard.Prune(now, fx);
                break;
            case SetDegradation:
                shard.SetDegradation((ChannelDegradation)command.Payload!);
                break;
            case SetVelocity:
                shard.SetVelocity((ChannelVelocity)command.Payload!);
                break;
            default:
                throw new InvalidOperationException(
                    $"Journal record {command.Seq} has unknown kind '{command.Kind}': the data file was written by a newer Truestock.");
        }
    }

    private static T Read<T>(JournalRecord record) =>
        JsonSerializer.Deserialize<T>(record.Payload, Json)
        ?? throw new InvalidOperationException($"Journal record {record.Seq} ({record.Kind}) has an empty payload.");
}

/// <summary>A journal record with its payload decoded (null for kinds without one).</summary>
internal readonly record struct DecodedCommand(long Seq, DateTimeOffset RecordedAt, string Kind, object? Payload);

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
