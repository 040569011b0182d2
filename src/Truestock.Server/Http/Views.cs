using System.Text.Json;
using Truestock.Core;

namespace Truestock.Server.Http;

/// <summary>A location as the API shows it.</summary>
public sealed record LocationView(string LocationId, string Name, string Type);

/// <summary>A channel as the API shows it.</summary>
public sealed record ChannelView(string ChannelId, string Name, IReadOnlyList<string> Locations, int AllocationPercent,
    long BufferUnits, long? MaxQuantity, JsonElement? Connector);

/// <summary>The quantities of one position.</summary>
public sealed record PositionView(string LocationId, long OnHand, long Damaged, long Inspection, long Allocated, long Reserved,
    long Incoming, long SafetyStock, long Available);

/// <summary>A channel's available-to-sell for one SKU.</summary>
public sealed record ChannelAtsView(string ChannelId, long Available, BufferView? Buffer = null);

/// <summary>
/// Why a channel shows less than its share of the pool: the static buffer, the velocity buffer with
/// its inputs (sales velocity × propagation delay), and the degradation buffer. Present when any is set.
/// </summary>
public sealed record BufferView(long StaticUnits, double VelocityUnitsPerSecond, double PropagationDelaySeconds, long VelocityUnits,
    long AppliedUnits, long DegradationUnits)
{
    /// <summary>The breakdown of a channel's buffer for a SKU, or null when the channel withholds nothing.</summary>
    public static BufferView? Of(Core.Shard shard, Core.Channel channel, string sku, DateTimeOffset now)
    {
        if (channel.BufferUnits == 0 && shard.VelocityOf(channel.Id) is null && shard.DegradationOf(channel.Id).IsNone)
        {
            return null;
        }
        var b = shard.BufferOf(channel, sku, now);
        return new BufferView(b.StaticUnits, Math.Round(b.VelocityUnitsPerSecond, 6), b.DelaySeconds, b.VelocityUnits, b.BufferUnits, b.DegradationUnits);
    }
}

/// <summary>Everything about one SKU's availability.</summary>
public sealed record AvailabilityView(string Sku, IReadOnlyList<PositionView> Locations, IReadOnlyList<ChannelAtsView> Channels);

/// <summary>One SKU's ATS in a bulk read.</summary>
public sealed record SkuAtsView(string Sku, long Available, BufferView? Buffer = null);

/// <summary>Bulk channel availability.</summary>
public sealed record ChannelAvailabilityView(string ChannelId, IReadOnlyList<SkuAtsView> Items);

/// <summary>A reservation line.</summary>
public sealed record ReservationLineView(string Sku, long Quantity, string LocationId, long Shipped);

/// <summary>A reservation.</summary>
public sealed record ReservationView(string ReservationId, string Status, string ChannelId, DateTimeOffset CreatedAt,
    DateTimeOffset ExpiresAt, int TtlSeconds, string CorrelationId, IReadOnlyList<ReservationLineView> Lines);

/// <summary>Why an event was rejected.</summary>
public sealed record EventErrorView(string Type, string Detail);

/// <summary>The result of one event.</summary>
public sealed record EventResultView(string EventId, string Status, EventErrorView? Error);

/// <summary>The results of an events request, in request order.</summary>
public sealed record EventsResponse(IReadOnlyList<EventResultView> Results);

/// <summary>One ledger row; <c>Erp</c> (extension) says what the ERP made of it, only where ERP posting applies to it.</summary>
public sealed record LedgerEntryView(long Id, string? EventId, string? ReservationId, string Type, long Quantity,
    DateTimeOffset OccurredAt, DateTimeOffset RecordedAt, string Status, string Source, string CorrelationId,
    long OnHandAfter, long AvailableAfter, Erp.ErpLedgerView? Erp = null);

/// <summary>A page of ledger rows; pass <c>next</c> as <c>after</c> for the following page.</summary>
public sealed record LedgerPage(IReadOnlyList<LedgerEntryView> Entries, string? Next);


internal static class Views
{
    private static readonly string[] LocationTypeNames = ["store", "warehouse", "dc", "3pl", "virtual"];

    public static string Name(LocationType type) => LocationTypeNames[(int)type];

    public static bool TryParseLocationType(string s, out LocationType type)
    {
        var i = System.Array.IndexOf(LocationTypeNames, s);
        type = (LocationType)Math.Max(i, 0);
        return i >= 0;
    }

    public static LocationView Of(Location l) => new(l.Id, l.Name, Name(l.Type));

    public static ChannelView Of(Channel c) => new(c.Id, c.Name, c.Locations, c.AllocationPercent, c.BufferUnits, c.MaxQuantity,
        c.ConnectorJson is null ? null : JsonDocument.Parse(c.ConnectorJson).RootElement.Clone());

    public static PositionView Of(string locationId, Position? p) => p is null
        ? new PositionView(locationId, 0, 0, 0, 0, 0, 0, 0, 0)
        : new PositionView(p.LocationId, p.OnHand, p.Damaged, p.Inspection, p.Allocated, p.Reserved, p.Incoming, p.SafetyStock, p.Available);

    public static ReservationView Of(Reservation r) => new(r.Id, Shard.Name(r.Status), r.ChannelId, r.CreatedAt, r.ExpiresAt,
        r.TtlSeconds, r.CorrelationId, r.Lines.Select(l => new ReservationLineView(l.Sku, l.Quantity, l.LocationId, l.Shipped)).ToArray());
}
