namespace Truestock.Core;

public sealed partial class Shard
{
    private static readonly string[] TypeNames =
    [
        "received", "sold", "adjusted", "counted", "damaged", "written_off", "return_received", "inspected",
        "transfer_shipped", "transfer_received", "shipped",
    ];

    private static readonly string[] StatusNames = ["applied", "duplicate", "superseded", "stale", "rejected"];

    /// <summary>The wire name of an event type (snake_case).</summary>
    public static string TypeName(EventType type) => TypeNames[(int)type];

    /// <summary>The wire name of an event status.</summary>
    public static string StatusName(EventStatus status) => StatusNames[(int)status];

    /// <summary>Parses a wire event type name.</summary>
    public static bool TryParseType(string name, out EventType type)
    {
        var i = Array.IndexOf(TypeNames, name);
        type = (EventType)Math.Max(i, 0);
        return i >= 0;
    }

    /// <summary>
    /// Decides one stock event: idempotency, the count ordering rule, the type's effects, clamps,
    /// oversell and sequence-gap detection. A rejected event changes nothing.
    /// </summary>
    public EventOutcome ApplyEvent(StockEvent e, DateTimeOffset now, Effects effects)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(effects);
        var known = _events.TryGetValue(e.EventId, out var seen) ? seen.Fingerprint : e.PriorFingerprint;
        if (known is { } fingerprint)
        {
            return fingerprint == e.Fingerprint
                ? new EventOutcome(EventStatus.Duplicate)
                : Reject(e, now, effects, RejectionTypes.IdempotencyConflict,
                    $"eventId '{e.EventId}' was already used with different content.");
        }
        if (!_locations.ContainsKey(e.LocationId))
        {
            return Reject(e, now, effects, RejectionTypes.UnknownLocation,
                $"Location '{e.LocationId}' is not declared; PUT /v1/locations/{e.LocationId} first.");
        }
        if (e.Type == EventType.TransferShipped && (e.ToLocationId is null || !_locations.ContainsKey(e.ToLocationId)))
        {
            return Reject(e, now, effects, RejectionTypes.UnknownLocation,
                $"Destination location '{e.ToLocationId}' is not declared.");
        }
        Reservation? reservation = null;
        if (e.Type == EventType.Shipped && e.ReservationId is not null)
        {
            var rejection = FindShipmentReservation(e, out reservation);
            if (rejection is not null)
            {
                return Reject(e, now, effects, rejection.Value.Type, rejection.Value.Detail);
            }
        }

        var ticks = e.OccurredAt.UtcTicks;
        var existing = FindPosition(e.Sku, e.LocationId);
        if (e.Type == EventType.Counted && existing?.History is { } h && ticks <= h.HorizonTicks
            && !(existing.CountedAt is { } c0 && ticks <= c0.UtcTicks))
        {
            return Reject(e, now, effects, RejectionTypes.CountBeyondHistory,
                $"The count is older than the oldest movement this position still remembers ({new DateTimeOffset(h.HorizonTicks, TimeSpan.Zero):O}); it cannot be placed exactly. Send a newer count.");
        }
        var pos = existing ?? GetOrCreatePosition(e.Sku, e.LocationId);

        CheckSourceSequence(e, pos, now, effects);
        _events[e.EventId] = new SeenEvent(e.Fingerprint, now);
        if (effects.Recording)
        {
            effects.AcceptedEvents.Add((e.EventId, e.Fingerprint));
        }

        var onHandBefore = pos.OnHand;
        var availableBefore = pos.Available;
        var superseded = pos.CountedAt is { } countedAt && ticks <= countedAt.UtcTicks;
        EventStatus status;
        if (e.Type == EventType.Counted)
        {
            if (superseded)
            {
                status = EventStatus.Stale;
            }
            else
            {
                status = EventStatus.Applied;
                var later = pos.History?.SumAfter(ticks) ?? 0;
                pos.OnHand = e.Quantity + later;
                pos.CountedAt = e.OccurredAt;
                pos.History?.DropThrough(ticks);
                Normalize(effects, pos, e, now, preferInspection: false);
            }
        }
        else
        {
            status = superseded ? EventStatus.Superseded : EventStatus.Applied;
            ApplyEffects(e, pos, reservation, superseded, now, effects);
        }

        Record(effects, pos, e.EventId, e.ReservationId, TypeName(e.Type), e.Quantity, e.OccurredAt, now,
            StatusName(status), e.Source, e.CorrelationId);
        if (pos.OnHand < 0 && pos.OnHand < onHandBefore)
        {
            Raise(effects, ExceptionTypes.NegativeOnHand, pos, e.EventId, e.ReservationId, e.Source, -pos.OnHand,
                $"onHand is {pos.OnHand} after {TypeName(e.Type)} of {e.Quantity}.", now);
        }
        if (pos.Available < 0 && pos.Available < availableBefore)
        {
            Raise(effects, ExceptionTypes.Oversell, pos, e.EventId, e.ReservationId, e.Source, -pos.Available,
                $"Oversold by {-pos.Available} unit(s): available is {pos.Available} after {TypeName(e.Type)} of {e.Quantity}.", now);
        }
        return new EventOutcome(status);
    }

    private (string Type, string Detail)? FindShipmentReservation(StockEvent e, out Reservation? reservation)
    {
        if (!_reservations.TryGetValue(e.ReservationId!, out reservation))
        {
            return (RejectionTypes.UnknownReservation, $"Reservation '{e.ReservationId}' does not exist.");
        }
        if (reservation.Status is not (ReservationStatus.Committed or ReservationStatus.Fulfilled))
        {
            return (RejectionTypes.ReservationNotCommitted,
                $"Reservation '{e.ReservationId}' is {Name(reservation.Status)}; only committed reservations ship.");
        }
        for (var i = 0; i < reservation.Lines.Count; i++)
        {
            var l = reservation.Lines[i];
            if (l.Sku == e.Sku && l.LocationId == e.LocationId)
            {
                return null;
            }
        }
        return (RejectionTypes.ReservationLineNotFound,
            $"Reservation '{e.ReservationId}' has no line for SKU '{e.Sku}' at location '{e.LocationId}'.");
    }

    private void ApplyEffects(StockEvent e, Position pos, Reservation? reservation, bool superseded,
        DateTimeOffset now, Effects fx)
    {
        var q = e.Quantity;
        long onHandDelta = 0;
        var preferInspection = false;
        switch (e.Type)
        {
            case EventType.Received:
                onHandDelta = q;
                break;
            case EventType.Sold:
                onHandDelta = -q;
                RecordSale(e.Sku, q, now);
                break;
            case EventType.Adjusted:
                onHandDelta = q;
                break;
            case EventType.Damaged:
                pos.Damaged += q;
                break;
            case EventType.WrittenOff:
                pos.Damaged = Decrease(fx, pos, e, now, "damaged", pos.Damaged, q);
                onHandDelta = -q;
                break;
            case EventType.ReturnReceived:
                onHandDelta = q;
                pos.Inspection += q;
                preferInspection = true;
                break;
            case EventType.Inspected:
                pos.Inspection = Decrease(fx, pos, e, now, "inspection", pos.Inspection, q);
                if (e.Disposition == Disposition.Damaged)
                {
                    pos.Damaged += q;
                }
                else if (e.Disposition == Disposition.Scrap)
                {
                    onHandDelta = -q;
                }
                break;
            case EventType.TransferShipped:
                onHandDelta = -q;
                var destination = GetOrCreatePosition(e.Sku, e.ToLocationId!);
                destination.Incoming += q;
                Record(fx, destination, e.EventId, null, TypeName(e.Type), q, e.OccurredAt, now, "applied", e.Source, e.CorrelationId);
                break;
            case EventType.TransferReceived:
                pos.Incoming = Decrease(fx, pos, e, now, "incoming", pos.Incoming, q);
                onHandDelta = q;
                break;
            case EventType.Shipped:
                onHandDelta = -q;
                if (reservation is not null)
                {
                    ShipLines(e, pos, reservation, now, fx);
                }
                else
                {
                    // A shipment without a reservation is a sale the hub sees for the first time.
                    RecordSale(e.Sku, q, now);
                }
                break;
            case EventType.Counted:
            default:
                throw new InvalidOperationException($"Event type {e.Type} has no movement effects.");
        }
        if (!superseded && onHandDelta != 0)
        {
            pos.OnHand += onHandDelta;
            (pos.History ??= new OnHandHistory()).Add(e.OccurredAt.UtcTicks, onHandDelta);
        }
        Normalize(fx, pos, e, now, preferInspection);
    }

    /// <summary>Ships units against the reservation's matching lines in order; units beyond them are a clamp.</summary>
    private static void ShipLines(StockEvent e, Position pos, Reservation reservation, DateTimeOffset now, Effects fx)
    {
        var left = e.Quantity;
        long remainingBefore = 0;
        // Index loops rather than foreach or LINQ, which would allocate an enumerator per shipment.
        for (var i = 0; i < reservation.Lines.Count; i++)
        {
            var line = reservation.Lines[i];
            if (line.Sku != e.Sku || line.LocationId != e.LocationId)
            {
                continue;
            }
            var take = Math.Min(left, line.Quantity - line.Shipped);
            remainingBefore += line.Quantity - line.Shipped;
            line.Shipped += take;
            left -= take;
        }
        var taken = e.Quantity - left;
        if (left > 0)
        {
            Raise(fx, ExceptionTypes.Clamp, pos, e.EventId, reservation.Id, e.Source, left,
                $"Shipped {e.Quantity} against reservation '{reservation.Id}' but only {remainingBefore} unit(s) of its lines here were still allocated; allocated was reduced by {taken}.", now);
        }
        pos.Allocated = Decrease(fx, pos, e, now, "allocated", pos.Allocated, taken);
        if (reservation.Status == ReservationStatus.Committed && AllShipped(reservation))
        {
            reservation.Status = ReservationStatus.Fulfilled;
            reservation.EndedAt = now;
        }
    }

    private static bool AllShipped(Reservation reservation)
    {
        for (var i = 0; i < reservation.Lines.Count; i++)
        {
            if (reservation.Lines[i].Shipped < reservation.Lines[i].Quantity)
            {
                return false;
            }
        }
        return true;
    }

    private static long Decrease(Effects fx, Position pos, StockEvent e, DateTimeOffset now, string field, long value, long by)
    {
        if (by <= value)
        {
            return value - by;
        }
        Raise(fx, ExceptionTypes.Clamp, pos, e.EventId, e.ReservationId, e.Source, by - value,
            $"{field} would have gone to {value - by} after {TypeName(e.Type)} of {e.Quantity}; clamped at 0.", now);
        return 0;
    }

    /// <summary>Keeps onHand ≥ damaged + inspection (invariant 5), clamping the part the event grew first.</summary>
    private static void Normalize(Effects fx, Position pos, StockEvent e, DateTimeOffset now, bool preferInspection)
    {
        var excess = pos.Damaged + pos.Inspection - Math.Max(0, pos.OnHand);
        if (excess <= 0)
        {
            return;
        }
        long fromDamaged, fromInspection;
        if (preferInspection)
        {
            fromInspection = Math.Min(excess, pos.Inspection);
            fromDamaged = excess - fromInspection;
        }
        else
        {
            fromDamaged = Math.Min(excess, pos.Damaged);
            fromInspection = excess - fromDamaged;
        }
        pos.Damaged -= fromDamaged;
        pos.Inspection -= fromInspection;
        Raise(fx, ExceptionTypes.Clamp, pos, e.EventId, e.ReservationId, e.Source, excess,
            $"damaged + inspection exceeded onHand ({pos.OnHand}) after {TypeName(e.Type)} of {e.Quantity}; reduced damaged by {fromDamaged} and inspection by {fromInspection}.", now);
    }

    private void CheckSourceSequence(StockEvent e, Position pos, DateTimeOffset now, Effects fx)
    {
        if (e.SourceSeq is not { } seq)
        {
            return;
        }
        if (_sourceSeqs.TryGetValue(e.Source, out var last))
        {
            if (seq > last + 1)
            {
                Raise(fx, ExceptionTypes.SequenceGap, pos, e.EventId, null, e.Source, seq - last - 1, GapDetail(e.Source, last, seq), now);
            }
            if (seq <= last)
            {
                return;
            }
        }
        _sourceSeqs[e.Source] = seq;
    }

    // Kept out of CheckSourceSequence so that its closure is only allocated when there is a gap to describe.
    private static string GapDetail(string source, long last, long seq)
    {
        var missing = seq - last - 1;
        var listed = Math.Min(missing, Limits.GapNumbersListedMax);
        var numbers = string.Join(", ", Enumerable.Range(0, (int)listed).Select(i => (last + 1 + i).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var more = missing > listed ? $" and {missing - listed} more (up to {seq - 1})" : "";
        return $"Source '{source}' skipped {missing} sequence number(s): {numbers}{more}.";
    }

    private EventOutcome Reject(StockEvent e, DateTimeOffset now, Effects fx, string type, string detail)
    {
        if (fx.Recording)
        {
            var pos = FindPosition(e.Sku, e.LocationId);
            fx.Ledger.Add(new LedgerEntry(e.Sku, e.LocationId, e.EventId, e.ReservationId, TypeName(e.Type), e.Quantity,
                e.OccurredAt, now, "rejected", e.Source, e.CorrelationId, pos?.OnHand ?? 0, pos?.Available ?? 0));
        }
        return new EventOutcome(EventStatus.Rejected, type, detail);
    }
}

internal readonly record struct SeenEvent(Fingerprint Fingerprint, DateTimeOffset RecordedAt);
