namespace Truestock.Core;

/// <summary>One row of a position's ledger: what a command did to it.</summary>
public readonly record struct LedgerEntry(
    string Sku,
    string LocationId,
    string? EventId,
    string? ReservationId,
    string Type,
    long Quantity,
    DateTimeOffset OccurredAt,
    DateTimeOffset RecordedAt,
    string Status,
    string Source,
    string CorrelationId,
    long OnHandAfter,
    long AvailableAfter);

/// <summary>Kinds of exception the engine raises for people to look at.</summary>
public static class ExceptionTypes
{
    /// <summary>available went below zero through a physical event.</summary>
    public const string Oversell = "oversell";
    /// <summary>onHand went below zero.</summary>
    public const string NegativeOnHand = "negative-on-hand";
    /// <summary>A quantity that would have gone below zero (or above onHand) was clamped.</summary>
    public const string Clamp = "clamp";
    /// <summary>A source skipped sequence numbers.</summary>
    public const string SequenceGap = "sequence-gap";
}

/// <summary>An exception raised by a decision.</summary>
public readonly record struct ExceptionRecord(
    string Type,
    string? Sku,
    string? LocationId,
    string? EventId,
    string? ReservationId,
    string? Source,
    long Quantity,
    string Detail,
    DateTimeOffset RecordedAt);

/// <summary>
/// The side effects of a batch of decisions, collected for the journal. The host clears and
/// reuses one buffer per batch so that deciding does not allocate collections.
/// </summary>
public sealed class Effects
{
    /// <summary>Ledger rows, in order.</summary>
    public List<LedgerEntry> Ledger { get; } = new(1024);
    /// <summary>Exceptions, in order.</summary>
    public List<ExceptionRecord> Exceptions { get; } = new(64);
    /// <summary>Event and reservation ids accepted in this batch, with their fingerprints (durable idempotency).</summary>
    public List<(string EventId, Fingerprint Fingerprint)> AcceptedEvents { get; } = new(1024);

    /// <summary>Reservations created in this batch.</summary>
    public List<Reservation> CreatedReservations { get; } = new(64);

    /// <summary>Ended reservations dropped from memory in this batch (the host archives them).</summary>
    public List<Reservation> ForgottenReservations { get; } = [];

    /// <summary>When false, effects are dropped (journal replay: they are already recorded).</summary>
    public bool Recording { get; set; } = true;

    /// <summary>Empties the buffer for the next batch.</summary>
    public void Clear()
    {
        Ledger.Clear();
        Exceptions.Clear();
        AcceptedEvents.Clear();
        CreatedReservations.Clear();
        ForgottenReservations.Clear();
    }
}
