namespace Truestock.Core;

/// <summary>
/// One engine shard: the in-memory state of a set of SKUs and the decisions on it.
/// A shard is single-threaded by design: one sequencing loop owns it and calls it for every
/// command in arrival order, with the time of the batch. It never reads a clock and never does
/// I/O; what it decides is returned, and what must be recorded is appended to an <see cref="Effects"/>.
/// </summary>
public sealed partial class Shard
{
    private readonly Dictionary<string, Location> _locations = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Channel> _channels = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Position[]> _skus = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SeenEvent> _events = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Reservation> _reservations = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _sourceSeqs = new(StringComparer.Ordinal);
    private readonly PriorityQueue<Reservation, DateTimeOffset> _expiries = new();
    // Scratch for the lines of the reservation being decided; see CreateReservation.
    private HeldLine[] _held = new HeldLine[4];
    private long _positionCount;

    /// <summary>Creates an empty shard.</summary>
    /// <param name="idempotencyRetentionDays">How long event ids and ended reservations are remembered.</param>
    public Shard(int idempotencyRetentionDays = Limits.IdempotencyRetentionDaysDefault)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(idempotencyRetentionDays, 1);
        IdempotencyRetention = TimeSpan.FromDays(idempotencyRetentionDays);
    }

    /// <summary>How long event ids and ended reservations are remembered.</summary>
    public TimeSpan IdempotencyRetention { get; }

    /// <summary>Number of positions held.</summary>
    public long PositionCount => _positionCount;

    /// <summary>Number of event ids remembered for idempotency.</summary>
    public int RememberedEventCount => _events.Count;

    /// <summary>Number of reservations remembered (any state).</summary>
    public int ReservationCount => _reservations.Count;

    /// <summary>Declared locations.</summary>
    public IEnumerable<Location> Locations => _locations.Values;

    /// <summary>Declared channels.</summary>
    public IEnumerable<Channel> Channels => _channels.Values;

    /// <summary>Every SKU with at least one position.</summary>
    public IEnumerable<string> Skus => _skus.Keys;

    /// <summary>Looks up a location.</summary>
    public Location? FindLocation(string id) => _locations.GetValueOrDefault(id);

    /// <summary>Looks up a channel.</summary>
    public Channel? FindChannel(string id) => _channels.GetValueOrDefault(id);

    /// <summary>Looks up a reservation.</summary>
    public Reservation? FindReservation(string id) => _reservations.GetValueOrDefault(id);

    /// <summary>The positions of a SKU (empty for an unknown SKU).</summary>
    public ReadOnlySpan<Position> PositionsOf(string sku) =>
        _skus.TryGetValue(sku, out var list) ? list : ReadOnlySpan<Position>.Empty;

    /// <summary>The position of a SKU at a location, or null when nothing has touched it.</summary>
    public Position? FindPosition(string sku, string locationId) =>
        _skus.TryGetValue(sku, out var positions) ? Find(positions, locationId) : null;

    /// <summary>
    /// The position at a location among the positions of one SKU, or null. Callers that visit
    /// several locations of a SKU look its positions up once and use this for each.
    /// </summary>
    private static Position? Find(Position[] positions, string locationId)
    {
        foreach (var p in positions)
        {
            if (ReferenceEquals(p.LocationId, locationId) || p.LocationId == locationId)
            {
                return p;
            }
        }
        return null;
    }

    /// <summary>available(sku, location), 0 for an untouched position.</summary>
    public long AvailableAt(string sku, string locationId) => FindPosition(sku, locationId)?.Available ?? 0;

    /// <summary>
    /// Available-to-sell of a SKU on a channel:
    /// clamp(floor(pool · p / 100) − buffer − degradationBuffer, 0, max), where pool sums the
    /// non-negative available of the sourcing locations, buffer is the channel's static buffer or,
    /// when the channel uses a velocity buffer (<see cref="SetVelocity"/>), the larger of it and
    /// ceil(sales velocity at <paramref name="now"/> × the channel's propagation delay), and
    /// degradationBuffer is the channel's current <see cref="DegradationBuffer"/> (see <see cref="SetDegradation"/>).
    /// </summary>
    public long Ats(Channel channel, string sku, DateTimeOffset? now = null)
    {
        ArgumentNullException.ThrowIfNull(channel);
        var share = Share(channel, sku);
        var buffer = channel.BufferUnits;
        if (_channelVelocities.Count > 0)
        {
            buffer = Math.Max(buffer, VelocityBuffer(channel, sku, now).Units);
        }
        var degradation = _degradations.Count == 0 ? 0 : DegradationOf(channel.Id).UnitsFor(share);
        var ats = share - buffer - degradation;
        if (ats < 0)
        {
            return 0;
        }
        return channel.MaxQuantity is { } max && ats > max ? max : ats;
    }

    /// <summary>floor(pool · p / 100): the channel's share of its sourcing locations' available.</summary>
    private long Share(Channel channel, string sku)
    {
        if (!_skus.TryGetValue(sku, out var positions))
        {
            return 0;
        }
        long pool = 0;
        // An index loop: foreach over an IReadOnlyList<T> allocates an enumerator, and every reservation line comes here.
        var locations = channel.Locations;
        for (var i = 0; i < locations.Count; i++)
        {
            if (Find(positions, locations[i]) is { } p)
            {
                pool += Math.Max(0, p.Available);
            }
        }
        return pool * channel.AllocationPercent / 100;
    }

    private Position GetOrCreatePosition(string sku, string locationId)
    {
        var location = _locations[locationId];
        if (_skus.TryGetValue(sku, out var list))
        {
            foreach (var p in list)
            {
                if (p.LocationId == locationId)
                {
                    return p;
                }
            }
            Array.Resize(ref list, list.Length + 1);
        }
        else
        {
            list = new Position[1];
        }
        // Intern the location id so that every position shares the master-data string.
        var created = new Position { Sku = sku, LocationId = location.Id };
        list[^1] = created;
        _skus[sku] = list;
        _positionCount++;
        return created;
    }

    // ---------------------------------------------------------------- master data

    /// <summary>Declares or replaces a location.</summary>
    public MasterDataOutcome PutLocation(Location location)
    {
        ArgumentNullException.ThrowIfNull(location);
        var created = !_locations.ContainsKey(location.Id);
        _locations[location.Id] = location;
        return new MasterDataOutcome(created ? MasterDataResult.Created : MasterDataResult.Updated);
    }

    /// <summary>Declares or replaces a channel; every sourcing location must be declared.</summary>
    public MasterDataOutcome PutChannel(Channel channel)
    {
        ArgumentNullException.ThrowIfNull(channel);
        foreach (var loc in channel.Locations)
        {
            if (!_locations.ContainsKey(loc))
            {
                return new MasterDataOutcome(MasterDataResult.Rejected, RejectionTypes.UnknownLocation,
                    $"Location '{loc}' is not declared; PUT /v1/locations/{loc} first.");
            }
        }
        var created = !_channels.ContainsKey(channel.Id);
        _channels[channel.Id] = channel;
        return new MasterDataOutcome(created ? MasterDataResult.Created : MasterDataResult.Updated);
    }

    /// <summary>
    /// Sets the safety stock of a position. Raising it above what is free is refused, because
    /// available may only go negative through physical events.
    /// </summary>
    public MasterDataOutcome SetSafetyStock(string sku, string locationId, long quantity, DateTimeOffset now, string correlationId, Effects effects)
    {
        ArgumentNullException.ThrowIfNull(effects);
        if (!_locations.ContainsKey(locationId))
        {
            return new MasterDataOutcome(MasterDataResult.Rejected, RejectionTypes.UnknownLocation,
                $"Location '{locationId}' is not declared.");
        }
        var existing = FindPosition(sku, locationId);
        var current = existing?.SafetyStock ?? 0;
        if (quantity > current)
        {
            var availableBefore = existing?.Available ?? 0;
            if (availableBefore - (quantity - current) < 0)
            {
                return new MasterDataOutcome(MasterDataResult.Rejected, RejectionTypes.InsufficientStock,
                    $"Safety stock {quantity} would make available negative (available now {availableBefore}, safety stock {current}).");
            }
        }
        var pos = existing ?? GetOrCreatePosition(sku, locationId);
        pos.SafetyStock = quantity;
        Record(effects, pos, null, null, "safety_stock_set", quantity, now, now, "applied", "api", correlationId);
        return new MasterDataOutcome(existing is null ? MasterDataResult.Created : MasterDataResult.Updated);
    }

    // ---------------------------------------------------------------- helpers

    private static void Record(Effects fx, Position pos, string? eventId, string? reservationId, string type, long quantity,
        DateTimeOffset occurredAt, DateTimeOffset now, string status, string source, string correlationId)
    {
        if (!fx.Recording)
        {
            return;
        }
        fx.Ledger.Add(new LedgerEntry(pos.Sku, pos.LocationId, eventId, reservationId, type, quantity, occurredAt, now,
            status, source, correlationId, pos.OnHand, pos.Available));
    }

    private static void Raise(Effects fx, string type, Position? pos, string? eventId, string? reservationId, string? source,
        long quantity, string detail, DateTimeOffset now)
    {
        if (!fx.Recording)
        {
            return;
        }
        fx.Exceptions.Add(new ExceptionRecord(type, pos?.Sku, pos?.LocationId, eventId, reservationId, source, quantity, detail, now));
    }
}
