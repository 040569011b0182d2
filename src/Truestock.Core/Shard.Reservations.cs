namespace Truestock.Core;

public sealed partial class Shard
{
    /// <summary>
    /// Holds stock for a reservation, all-or-nothing. Each line takes units from one location: the
    /// one given, or the first in the channel's sourcing list with enough available. A line succeeds
    /// only if its quantity is within the channel's ATS (counting the lines before it) and the
    /// location has that much available, so a reservation can never make available negative.
    /// </summary>
    public ReservationOutcome CreateReservation(CreateReservation command, DateTimeOffset now, Effects effects)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(effects);
        if (_reservations.TryGetValue(command.ReservationId, out var existing))
        {
            if (existing.Fingerprint != command.Fingerprint)
            {
                return new ReservationOutcome(ReservationResult.Conflict, existing, ErrorType: RejectionTypes.IdempotencyConflict,
                    ErrorDetail: $"reservationId '{command.ReservationId}' was already used with a different body.");
            }
            return new ReservationOutcome(ReservationResult.Existing, existing, ExpiredOnTheWay: ExpireIfDue(existing, now, effects));
        }
        if (command.PriorFingerprint is { } prior)
        {
            // Used before and no longer in memory: it ended more than the retention ago.
            return prior == command.Fingerprint
                ? new ReservationOutcome(ReservationResult.Forgotten)
                : new ReservationOutcome(ReservationResult.Conflict, ErrorType: RejectionTypes.IdempotencyConflict,
                    ErrorDetail: $"reservationId '{command.ReservationId}' was already used with a different body.");
        }
        if (!_channels.TryGetValue(command.ChannelId, out var channel))
        {
            return Invalid(RejectionTypes.UnknownChannel, $"Channel '{command.ChannelId}' is not declared; PUT /v1/channels/{command.ChannelId} first.");
        }
        // Index loops rather than foreach: over an IReadOnlyList<T> foreach allocates an enumerator
        // object, and this is the hot path of every reservation.
        var requested = command.Lines;
        for (var i = 0; i < requested.Count; i++)
        {
            var line = requested[i];
            if (line.LocationId is null)
            {
                continue;
            }
            if (!_locations.ContainsKey(line.LocationId))
            {
                return Invalid(RejectionTypes.UnknownLocation, $"Location '{line.LocationId}' is not declared.");
            }
            if (!Sources(channel, line.LocationId))
            {
                return Invalid(RejectionTypes.LocationNotSourced,
                    $"Location '{line.LocationId}' is not in the sourcing list of channel '{channel.Id}'.");
            }
        }

        // The positions taken from are kept in a buffer of the shard, reused by every reservation
        // (the shard is single-threaded), rather than in a list made for each one.
        var held = _held.Length >= requested.Count ? _held : (_held = new HeldLine[Math.Max(requested.Count, _held.Length * 2)]);
        var heldCount = 0;
        List<Shortage>? shortages = null;
        for (var i = 0; i < requested.Count; i++)
        {
            var line = requested[i];
            var ats = Ats(channel, line.Sku, now);
            var chosen = line.LocationId is null
                ? FirstSourcingPosition(channel, line.Sku, line.Quantity)
                : FindPosition(line.Sku, line.LocationId) is { } given && given.Available >= line.Quantity ? given : null;
            if (chosen is null || line.Quantity > ats)
            {
                var best = line.LocationId is null ? BestAvailable(channel, line.Sku) : Math.Max(0, AvailableAt(line.Sku, line.LocationId));
                (shortages ??= []).Add(new Shortage(line.Sku, line.Quantity, Math.Min(ats, best)));
                continue;
            }
            // Taking the units now makes later lines of the same SKU see what is left.
            chosen.Reserved += line.Quantity;
            held[heldCount++] = new HeldLine(chosen, line.Quantity);
        }
        if (shortages is not null)
        {
            for (var i = 0; i < heldCount; i++)
            {
                held[i].Position.Reserved -= held[i].Quantity;
            }
            return new ReservationOutcome(ReservationResult.Insufficient, Shortages: shortages);
        }

        var lines = new ReservationLine[heldCount];
        for (var i = 0; i < heldCount; i++)
        {
            lines[i] = new ReservationLine { Sku = held[i].Position.Sku, Quantity = held[i].Quantity, LocationId = held[i].Position.LocationId };
        }
        var reservation = new Reservation
        {
            Id = command.ReservationId,
            ChannelId = channel.Id,
            Status = ReservationStatus.Held,
            CreatedAt = now,
            ExpiresAt = now.AddSeconds(command.TtlSeconds),
            TtlSeconds = command.TtlSeconds,
            CorrelationId = command.CorrelationId,
            Lines = lines,
            Fingerprint = command.Fingerprint,
        };
        _reservations.Add(reservation.Id, reservation);
        _expiries.Enqueue(reservation, reservation.ExpiresAt);
        if (effects.Recording)
        {
            effects.CreatedReservations.Add(reservation);
        }
        for (var i = 0; i < heldCount; i++)
        {
            var (position, quantity) = held[i];
            Record(effects, position, null, reservation.Id, "reservation_held", quantity, now, now, "applied", channel.Id, command.CorrelationId);
            RecordSale(position.Sku, quantity, now);
        }
        return new ReservationOutcome(ReservationResult.Created, reservation);
    }

    /// <summary>Moves a held reservation's units from reserved to allocated. Idempotent on a committed one.</summary>
    public ReservationOutcome CommitReservation(string reservationId, DateTimeOffset now, string correlationId, Effects effects)
    {
        ArgumentNullException.ThrowIfNull(effects);
        if (!_reservations.TryGetValue(reservationId, out var r))
        {
            return NotFound(reservationId);
        }
        var expired = ExpireIfDue(r, now, effects);
        switch (r.Status)
        {
            case ReservationStatus.Held:
                for (var i = 0; i < r.Lines.Count; i++)
                {
                    var line = r.Lines[i];
                    var pos = FindPosition(line.Sku, line.LocationId)!;
                    pos.Reserved -= line.Quantity;
                    pos.Allocated += line.Quantity;
                    Record(effects, pos, null, r.Id, "reservation_committed", line.Quantity, now, now, "applied", r.ChannelId, correlationId);
                }
                r.Status = ReservationStatus.Committed;
                return new ReservationOutcome(ReservationResult.Changed, r);
            case ReservationStatus.Committed:
            case ReservationStatus.Fulfilled:
                return new ReservationOutcome(ReservationResult.Unchanged, r);
            default:
                return new ReservationOutcome(ReservationResult.IllegalState, r, ErrorType: RejectionTypes.IllegalState,
                    ErrorDetail: $"Reservation '{r.Id}' is {Name(r.Status)} and can no longer be committed.", ExpiredOnTheWay: expired);
        }
    }

    /// <summary>
    /// Cancels a reservation: a held one returns its reserved units, a committed one its unshipped
    /// allocated units (an order cancelled before shipping). Idempotent on a released one.
    /// </summary>
    public ReservationOutcome ReleaseReservation(string reservationId, DateTimeOffset now, string correlationId, Effects effects)
    {
        ArgumentNullException.ThrowIfNull(effects);
        if (!_reservations.TryGetValue(reservationId, out var r))
        {
            return NotFound(reservationId);
        }
        var expired = ExpireIfDue(r, now, effects);
        switch (r.Status)
        {
            case ReservationStatus.Held:
            case ReservationStatus.Committed:
                var wasHeld = r.Status == ReservationStatus.Held;
                for (var i = 0; i < r.Lines.Count; i++)
                {
                    var line = r.Lines[i];
                    var pos = FindPosition(line.Sku, line.LocationId)!;
                    var units = line.Quantity - line.Shipped;
                    if (wasHeld)
                    {
                        pos.Reserved -= units;
                    }
                    else
                    {
                        pos.Allocated -= units;
                    }
                    Record(effects, pos, null, r.Id, "reservation_released", units, now, now, "applied", r.ChannelId, correlationId);
                }
                r.Status = ReservationStatus.Released;
                r.EndedAt = now;
                return new ReservationOutcome(ReservationResult.Changed, r);
            case ReservationStatus.Released:
                return new ReservationOutcome(ReservationResult.Unchanged, r);
            default:
                return new ReservationOutcome(ReservationResult.IllegalState, r, ErrorType: RejectionTypes.IllegalState,
                    ErrorDetail: $"Reservation '{r.Id}' is {Name(r.Status)} and cannot be released.", ExpiredOnTheWay: expired);
        }
    }

    /// <summary>Expires every held reservation whose expiresAt is at or before <paramref name="now"/>.</summary>
    /// <returns>How many reservations expired.</returns>
    public int ExpireDue(DateTimeOffset now, Effects effects)
    {
        ArgumentNullException.ThrowIfNull(effects);
        var expired = 0;
        while (_expiries.TryPeek(out var r, out var at) && at <= now)
        {
            _expiries.Dequeue();
            if (r.Status == ReservationStatus.Held && _reservations.ContainsKey(r.Id))
            {
                Expire(r, now, effects);
                expired++;
            }
        }
        return expired;
    }

    private bool ExpireIfDue(Reservation r, DateTimeOffset now, Effects effects)
    {
        if (r.Status == ReservationStatus.Held && r.ExpiresAt <= now)
        {
            Expire(r, now, effects);
            return true;
        }
        return false;
    }

    private void Expire(Reservation r, DateTimeOffset now, Effects effects)
    {
        for (var i = 0; i < r.Lines.Count; i++)
        {
            var line = r.Lines[i];
            var pos = FindPosition(line.Sku, line.LocationId)!;
            pos.Reserved -= line.Quantity;
            Record(effects, pos, null, r.Id, "reservation_expired", line.Quantity, r.ExpiresAt, now, "applied", r.ChannelId, r.CorrelationId);
        }
        r.Status = ReservationStatus.Expired;
        r.EndedAt = now;
    }

    private Position? FirstSourcingPosition(Channel channel, string sku, long quantity)
    {
        if (!_skus.TryGetValue(sku, out var positions))
        {
            return null;
        }
        var locations = channel.Locations;
        for (var i = 0; i < locations.Count; i++)
        {
            if (Find(positions, locations[i]) is { } p && p.Available >= quantity)
            {
                return p;
            }
        }
        return null;
    }

    private long BestAvailable(Channel channel, string sku)
    {
        long best = 0;
        var positions = _skus.GetValueOrDefault(sku) ?? [];
        var locations = channel.Locations;
        for (var i = 0; i < locations.Count; i++)
        {
            best = Math.Max(best, Find(positions, locations[i])?.Available ?? 0);
        }
        return best;
    }

    /// <summary>True when <paramref name="locationId"/> is in the channel's sourcing list.</summary>
    private static bool Sources(Channel channel, string locationId)
    {
        var locations = channel.Locations;
        for (var i = 0; i < locations.Count; i++)
        {
            if (locations[i] == locationId)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>A line held while a reservation is decided: the position it took from and how many units.</summary>
    private readonly record struct HeldLine(Position Position, long Quantity);

    /// <summary>The wire name of a reservation status.</summary>
    public static string Name(ReservationStatus status) => status switch
    {
        ReservationStatus.Held => "held",
        ReservationStatus.Committed => "committed",
        ReservationStatus.Released => "released",
        ReservationStatus.Expired => "expired",
        ReservationStatus.Fulfilled => "fulfilled",
        _ => throw new ArgumentOutOfRangeException(nameof(status)),
    };

    private static ReservationOutcome NotFound(string id) =>
        new(ReservationResult.NotFound, ErrorType: "not-found", ErrorDetail: $"Reservation '{id}' does not exist.");

    private static ReservationOutcome Invalid(string type, string detail) =>
        new(ReservationResult.Invalid, ErrorType: type, ErrorDetail: detail);
}
