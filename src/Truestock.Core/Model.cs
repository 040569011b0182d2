namespace Truestock.Core;

/// <summary>The kinds of place that hold stock (see the inventory model).</summary>
public enum LocationType
{
    /// <summary>A shop that sells to walk-in customers.</summary>
    Store,
    /// <summary>A warehouse.</summary>
    Warehouse,
    /// <summary>A distribution centre.</summary>
    Dc,
    /// <summary>A third-party logistics provider.</summary>
    ThreePl,
    /// <summary>A virtual location (drop-ship vendor, in-transit pool).</summary>
    Virtual,
}

/// <summary>The eleven stock-affecting event types of the inventory model.</summary>
public enum EventType
{
    /// <summary>onHand += q.</summary>
    Received,
    /// <summary>onHand −= q (an immediate sale without reservation).</summary>
    Sold,
    /// <summary>onHand += q, signed, reason required.</summary>
    Adjusted,
    /// <summary>onHand := q as of occurredAt.</summary>
    Counted,
    /// <summary>damaged += q.</summary>
    Damaged,
    /// <summary>damaged −= q; onHand −= q.</summary>
    WrittenOff,
    /// <summary>onHand += q; inspection += q.</summary>
    ReturnReceived,
    /// <summary>inspection −= q, then by disposition.</summary>
    Inspected,
    /// <summary>onHand −= q here; incoming += q at the destination.</summary>
    TransferShipped,
    /// <summary>incoming −= min(q, incoming); onHand += q.</summary>
    TransferReceived,
    /// <summary>Shipment of a committed reservation line, or a sale.</summary>
    Shipped,
}

/// <summary>What an inspection decided about returned units.</summary>
public enum Disposition
{
    /// <summary>No disposition given (only valid for events other than <see cref="EventType.Inspected"/>).</summary>
    None,
    /// <summary>Units become sellable.</summary>
    Restock,
    /// <summary>Units become damaged.</summary>
    Damaged,
    /// <summary>Units leave onHand.</summary>
    Scrap,
}

/// <summary>How an event was recorded.</summary>
public enum EventStatus
{
    /// <summary>All effects applied.</summary>
    Applied,
    /// <summary>Same eventId and content seen before: nothing changed.</summary>
    Duplicate,
    /// <summary>Older than the position's latest count: only non-onHand effects applied.</summary>
    Superseded,
    /// <summary>A count older than the position's latest count: nothing changed.</summary>
    Stale,
    /// <summary>Not applied; see the error.</summary>
    Rejected,
}

/// <summary>The life cycle of a reservation.</summary>
public enum ReservationStatus
{
    /// <summary>Units are held in <c>reserved</c> until expiry.</summary>
    Held,
    /// <summary>Units moved to <c>allocated</c>; no expiry.</summary>
    Committed,
    /// <summary>Cancelled by the caller; units returned.</summary>
    Released,
    /// <summary>Time to live ran out while held; units returned.</summary>
    Expired,
    /// <summary>Every committed line has been shipped.</summary>
    Fulfilled,
}

/// <summary>A 128-bit digest of a request's content, used to tell a duplicate from an idempotency conflict.</summary>
/// <param name="Hi">High 64 bits.</param>
/// <param name="Lo">Low 64 bits.</param>
public readonly record struct Fingerprint(ulong Hi, ulong Lo);

/// <summary>A place that holds stock.</summary>
/// <param name="Id">Location id.</param>
/// <param name="Name">Display name.</param>
/// <param name="Type">Kind of location.</param>
public sealed record Location(string Id, string Name, LocationType Type);

/// <summary>A selling channel and its publication rules.</summary>
/// <param name="Id">Channel id.</param>
/// <param name="Name">Display name.</param>
/// <param name="Locations">Sourcing list, in order of preference.</param>
/// <param name="AllocationPercent">Share of the pool offered to the channel (0–100).</param>
/// <param name="BufferUnits">Units withheld from the channel.</param>
/// <param name="MaxQuantity">Cap on the published quantity, or null for none.</param>
/// <param name="ConnectorJson">Connector settings as opaque JSON, or null.</param>
public sealed record Channel(
    string Id,
    string Name,
    IReadOnlyList<string> Locations,
    int AllocationPercent,
    long BufferUnits,
    long? MaxQuantity,
    string? ConnectorJson);

/// <summary>A stock event as reported by a source system, already validated for shape.</summary>
public sealed record StockEvent
{
    /// <summary>Idempotency key, unique forever.</summary>
    public required string EventId { get; init; }
    /// <summary>Event type.</summary>
    public required EventType Type { get; init; }
    /// <summary>SKU.</summary>
    public required string Sku { get; init; }
    /// <summary>Location of the affected position.</summary>
    public required string LocationId { get; init; }
    /// <summary>Quantity, with the sign rules of the type.</summary>
    public required long Quantity { get; init; }
    /// <summary>When it happened at the source.</summary>
    public required DateTimeOffset OccurredAt { get; init; }
    /// <summary>Reporting system.</summary>
    public required string Source { get; init; }
    /// <summary>Per-source increasing number, if the source numbers its events.</summary>
    public long? SourceSeq { get; init; }
    /// <summary>Correlation id (generated by the host when absent).</summary>
    public required string CorrelationId { get; init; }
    /// <summary>Free-text reason (required for <see cref="EventType.Adjusted"/>).</summary>
    public string? Reason { get; init; }
    /// <summary>Reservation shipped against (for <see cref="EventType.Shipped"/>).</summary>
    public string? ReservationId { get; init; }
    /// <summary>Destination (for <see cref="EventType.TransferShipped"/>).</summary>
    public string? ToLocationId { get; init; }
    /// <summary>Inspection outcome (for <see cref="EventType.Inspected"/>).</summary>
    public Disposition Disposition { get; init; }
    /// <summary>Digest of the content for idempotency.</summary>
    public required Fingerprint Fingerprint { get; init; }
    /// <summary>
    /// The fingerprint this eventId was first accepted with, when the host found it in durable
    /// storage: ids older than the in-memory retention stay duplicates for ever.
    /// </summary>
    public Fingerprint? PriorFingerprint { get; init; }
}

/// <summary>One requested reservation line.</summary>
/// <param name="Sku">SKU.</param>
/// <param name="Quantity">Units, &gt; 0.</param>
/// <param name="LocationId">Location to take from, or null to source from the channel's list.</param>
public sealed record ReservationLineRequest(string Sku, long Quantity, string? LocationId);

/// <summary>A request to hold stock.</summary>
public sealed record CreateReservation
{
    /// <summary>Idempotency key and identity of the reservation.</summary>
    public required string ReservationId { get; init; }
    /// <summary>Channel the reservation sells through.</summary>
    public required string ChannelId { get; init; }
    /// <summary>Time to live in seconds.</summary>
    public required int TtlSeconds { get; init; }
    /// <summary>Correlation id.</summary>
    public required string CorrelationId { get; init; }
    /// <summary>Lines, all-or-nothing.</summary>
    public required IReadOnlyList<ReservationLineRequest> Lines { get; init; }
    /// <summary>Digest of the content for idempotency.</summary>
    public required Fingerprint Fingerprint { get; init; }
    /// <summary>The fingerprint this reservationId was first used with, when the host found it in durable storage.</summary>
    public Fingerprint? PriorFingerprint { get; init; }
}

/// <summary>A held line of a reservation.</summary>
public sealed class ReservationLine
{
    /// <summary>SKU.</summary>
    public required string Sku { get; init; }
    /// <summary>Units held or allocated.</summary>
    public required long Quantity { get; init; }
    /// <summary>Location the units come from.</summary>
    public required string LocationId { get; init; }
    /// <summary>Units shipped so far (after commit).</summary>
    public long Shipped { get; set; }
}

/// <summary>A reservation and its state.</summary>
public sealed class Reservation
{
    /// <summary>Reservation id.</summary>
    public required string Id { get; init; }
    /// <summary>Channel.</summary>
    public required string ChannelId { get; init; }
    /// <summary>Current state.</summary>
    public ReservationStatus Status { get; set; }
    /// <summary>When the hold was created.</summary>
    public required DateTimeOffset CreatedAt { get; init; }
    /// <summary>When a held reservation expires.</summary>
    public required DateTimeOffset ExpiresAt { get; init; }
    /// <summary>When it reached a terminal state (released, expired, fulfilled), for retention.</summary>
    public DateTimeOffset? EndedAt { get; set; }
    /// <summary>Requested time to live (part of the idempotency content).</summary>
    public required int TtlSeconds { get; init; }
    /// <summary>Correlation id of the creating request.</summary>
    public required string CorrelationId { get; init; }
    /// <summary>Held lines.</summary>
    public required IReadOnlyList<ReservationLine> Lines { get; init; }
    /// <summary>Digest of the creating request.</summary>
    public required Fingerprint Fingerprint { get; init; }
}

/// <summary>The quantities of one SKU at one location.</summary>
public sealed class Position
{
    /// <summary>SKU.</summary>
    public required string Sku { get; init; }
    /// <summary>Location.</summary>
    public required string LocationId { get; init; }
    /// <summary>Physical units, any condition.</summary>
    public long OnHand { get; internal set; }
    /// <summary>Part of onHand that cannot be sold.</summary>
    public long Damaged { get; internal set; }
    /// <summary>Part of onHand awaiting inspection.</summary>
    public long Inspection { get; internal set; }
    /// <summary>Units committed to orders, not yet shipped.</summary>
    public long Allocated { get; internal set; }
    /// <summary>Units held by soft reservations.</summary>
    public long Reserved { get; internal set; }
    /// <summary>Units in transit to this location.</summary>
    public long Incoming { get; internal set; }
    /// <summary>Units never offered to a channel.</summary>
    public long SafetyStock { get; internal set; }
    /// <summary>occurredAt of the latest applied count, or null.</summary>
    public DateTimeOffset? CountedAt { get; internal set; }

    /// <summary>available = onHand − damaged − inspection − allocated − reserved − safetyStock.</summary>
    public long Available => OnHand - Damaged - Inspection - Allocated - Reserved - SafetyStock;

    // onHand changes applied after the latest count, sorted by occurredAt ticks, so that a
    // later-arriving count that happened before them can add them back (the count ordering rule).
    internal OnHandHistory? History;
}
