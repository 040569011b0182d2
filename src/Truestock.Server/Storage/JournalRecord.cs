namespace Truestock.Server.Storage;

/// <summary>One sequenced command as stored in the journal: enough to replay it exactly.</summary>
/// <param name="Seq">Position in the journal, gap-free and increasing.</param>
/// <param name="RecordedAt">The time the engine decided it with (replay uses the same time).</param>
/// <param name="Kind">Command kind (see <see cref="Engine.CommandKinds"/>).</param>
/// <param name="Payload">The command as JSON.</param>
internal readonly record struct JournalRecord(long Seq, DateTimeOffset RecordedAt, string Kind, string Payload);

/// <summary>A stored ledger row with its cursor id.</summary>
internal sealed record StoredLedgerEntry(
    long Id, string? EventId, string? ReservationId, string Type, long Quantity, DateTimeOffset OccurredAt,
    DateTimeOffset RecordedAt, string Status, string Source, string CorrelationId, long OnHandAfter, long AvailableAfter);

/// <summary>A stored exception with its cursor id.</summary>
internal sealed record StoredException(
    long Id, string Type, string? Sku, string? LocationId, string? EventId, string? ReservationId, string? Source,
    long Quantity, string Detail, DateTimeOffset RecordedAt);
