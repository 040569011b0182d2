namespace Truestock.Core;

/// <summary>Reasons an event is rejected by the engine (state-dependent; shape errors never reach it).</summary>
public static class RejectionTypes
{
    /// <summary>The eventId or reservationId was used before with other content.</summary>
    public const string IdempotencyConflict = "idempotency-conflict";
    /// <summary>The location (or destination) is not declared.</summary>
    public const string UnknownLocation = "unknown-location";
    /// <summary>The channel is not declared.</summary>
    public const string UnknownChannel = "unknown-channel";
    /// <summary>The reservation named by a shipment does not exist.</summary>
    public const string UnknownReservation = "unknown-reservation";
    /// <summary>A shipment names a reservation that is not committed.</summary>
    public const string ReservationNotCommitted = "reservation-not-committed";
    /// <summary>A shipment names a reservation with no line for this SKU at this location.</summary>
    public const string ReservationLineNotFound = "reservation-line-not-found";
    /// <summary>A count older than the oldest movement the position still remembers.</summary>
    public const string CountBeyondHistory = "count-beyond-history";
    /// <summary>A reservation line names a location outside the channel's sourcing list.</summary>
    public const string LocationNotSourced = "location-not-sourced";
    /// <summary>A policy change would make available negative.</summary>
    public const string InsufficientStock = "insufficient-stock";
    /// <summary>A reservation cannot make this state change.</summary>
    public const string IllegalState = "illegal-state";
    /// <summary>A value outside its allowed range reached the engine.</summary>
    public const string Validation = "validation";
}

/// <summary>The engine's answer to one event.</summary>
/// <param name="Status">How the event was recorded.</param>
/// <param name="ErrorType">Rejection type (see <see cref="RejectionTypes"/>) when rejected.</param>
/// <param name="ErrorDetail">Human-readable detail when rejected.</param>
public readonly record struct EventOutcome(EventStatus Status, string? ErrorType = null, string? ErrorDetail = null)
{
    /// <summary>True when the state changed or the event must be journaled.</summary>
    public bool Journaled => Status != EventStatus.Duplicate;
}

/// <summary>What came of a master-data write.</summary>
public enum MasterDataResult
{
    /// <summary>A new record was created.</summary>
    Created,
    /// <summary>An existing record was replaced.</summary>
    Updated,
    /// <summary>Nothing changed; see the error.</summary>
    Rejected,
}

/// <summary>The engine's answer to a master-data write.</summary>
/// <param name="Result">Created, updated or rejected.</param>
/// <param name="ErrorType">Rejection type when rejected.</param>
/// <param name="ErrorDetail">Detail when rejected.</param>
public readonly record struct MasterDataOutcome(MasterDataResult Result, string? ErrorType = null, string? ErrorDetail = null);

/// <summary>Kinds of answer to a reservation request.</summary>
public enum ReservationResult
{
    /// <summary>Held now.</summary>
    Created,
    /// <summary>The same request was seen before; the reservation is returned as it is now.</summary>
    Existing,
    /// <summary>A state change was applied (commit, release).</summary>
    Changed,
    /// <summary>Already in the requested state; nothing changed.</summary>
    Unchanged,
    /// <summary>Same id, other content.</summary>
    Conflict,
    /// <summary>Not enough stock; nothing held.</summary>
    Insufficient,
    /// <summary>No such reservation.</summary>
    NotFound,
    /// <summary>Unknown channel or location, or a location outside the sourcing list.</summary>
    Invalid,
    /// <summary>The state change is not allowed from the current state.</summary>
    IllegalState,
    /// <summary>The same request was seen long ago; the reservation ended and left memory (the host has its final state).</summary>
    Forgotten,
}

/// <summary>A line that could not be held.</summary>
/// <param name="Sku">SKU.</param>
/// <param name="Requested">Units asked for.</param>
/// <param name="Available">Units that could have been held for this line.</param>
public readonly record struct Shortage(string Sku, long Requested, long Available);

/// <summary>The engine's answer to a reservation command.</summary>
public readonly record struct ReservationOutcome(
    ReservationResult Result,
    Reservation? Reservation = null,
    IReadOnlyList<Shortage>? Shortages = null,
    string? ErrorType = null,
    string? ErrorDetail = null,
    bool ExpiredOnTheWay = false)
{
    /// <summary>
    /// True when the state changed and the command must be journaled. A command that finds its
    /// reservation past expiry expires it first, which is a change even when the answer is not.
    /// </summary>
    public bool Journaled => Result is ReservationResult.Created or ReservationResult.Changed || ExpiredOnTheWay;
}
