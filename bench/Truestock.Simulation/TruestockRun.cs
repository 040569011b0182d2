using Truestock.Core;

namespace Truestock.Simulation;

/// <summary>
/// The same retailer on Truestock's engine (the real <see cref="Shard"/>): every till sale,
/// return and delivery is an event the moment it happens; a checkout reserves before it accepts;
/// returns wait in inspection; each channel sees its ATS after its own publication delay.
/// </summary>
internal sealed class TruestockRun(Scenario scenario)
{
    private const int PickDelayMinutes = 60;
    private const int InspectionDelayMinutes = 1440;
    private const int HistoryMinutes = 64;
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 0, 0, 0, TimeSpan.Zero);

    private readonly Shard _shard = new();
    private readonly Effects _fx = new() { Recording = false };
    private long _ids;

    public Outcome Run(Action<int> progress)
    {
        var skus = scenario.Skus;
        var channels = scenario.Channels;
        var outcome = new Outcome("truestock", scenario.Minutes / 60);
        foreach (var node in Scenario.Nodes)
        {
            _shard.PutLocation(new Location(node, node, node == "S1" ? LocationType.Store : LocationType.Warehouse));
        }
        foreach (var c in channels)
        {
            _shard.PutChannel(new Channel(c.Id, c.Id, c.Nodes.Select(n => Scenario.Nodes[n]).ToArray(), 100, c.BufferUnits, null, null));
        }
        for (var s = 0; s < skus; s++)
        {
            for (var n = 0; n < Scenario.Nodes.Length; n++)
            {
                Apply(EventType.Received, s, n, scenario.InitialStock[s, n], 0);
            }
            // One unit on the store's shelf is kept for walk-in customers.
            _shard.SetSafetyStock(Sku(s), "S1", 1, Start, "sim", _fx);
        }

        var history = new long[HistoryMinutes, channels.Length, skus];
        var published = new long[channels.Length, skus];
        var picks = new PriorityQueue<(string ReservationId, int Node, int Sku, int Quantity), int>();
        var inspections = new PriorityQueue<(int Sku, bool Damaged), int>();
        var next = 0;
        var demands = scenario.Demands;
        for (var minute = 0; minute < scenario.Minutes; minute++)
        {
            var now = Start.AddMinutes(minute);
            for (var c = 0; c < channels.Length; c++)
            {
                var seen = Math.Max(0, minute - channels[c].PublicationDelayMinutes);
                for (var s = 0; s < skus; s++)
                {
                    published[c, s] = minute == 0 ? _shard.Ats(_shard.FindChannel(channels[c].Id)!, Sku(s)) : history[seen % HistoryMinutes, c, s];
                }
            }
            for (; next < demands.Count && demands[next].Minute == minute; next++)
            {
                var d = demands[next];
                switch (d.Kind)
                {
                    case DemandKind.Order:
                        Order(d, minute, now, published, picks, outcome);
                        break;
                    case DemandKind.PosSale:
                        var shelf = _shard.FindPosition(Sku(d.Sku), "S1") is { } p ? p.OnHand - p.Damaged - p.Inspection : 0;
                        if (shelf >= 1)
                        {
                            Apply(EventType.Sold, d.Sku, Scenario.Store, 1, minute);
                            outcome.PosUnitsSold++;
                        }
                        break;
                    case DemandKind.Return:
                        Apply(EventType.ReturnReceived, d.Sku, Scenario.Warehouse, 1, minute);
                        inspections.Enqueue((d.Sku, d.Damaged), minute + InspectionDelayMinutes);
                        break;
                    case DemandKind.Delivery:
                        Apply(EventType.Received, d.Sku, Scenario.Warehouse, d.Quantity, minute);
                        break;
                }
            }
            while (picks.TryPeek(out var pick, out var due) && due <= minute)
            {
                picks.Dequeue();
                var pos = _shard.FindPosition(Sku(pick.Sku), Scenario.Nodes[pick.Node])!;
                if (pos.OnHand - pos.Damaged - pos.Inspection >= pick.Quantity)
                {
                    Apply(EventType.Shipped, pick.Sku, pick.Node, pick.Quantity, minute, pick.ReservationId);
                    outcome.UnitsShipped += pick.Quantity;
                }
                else
                {
                    // The till sold the unit before the picker reached it; the engine raised an oversell.
                    _shard.ReleaseReservation(pick.ReservationId, now, "sim", _fx);
                    outcome.OrdersCancelled++;
                    outcome.OversoldUnits += pick.Quantity;
                }
            }
            while (inspections.TryPeek(out var item, out var due) && due <= minute)
            {
                inspections.Dequeue();
                Apply(EventType.Inspected, item.Sku, Scenario.Warehouse, 1, minute, disposition: item.Damaged ? Disposition.Damaged : Disposition.Restock);
            }
            _shard.ExpireDue(now, _fx);
            double drift = 0;
            for (var c = 0; c < channels.Length; c++)
            {
                var channel = _shard.FindChannel(channels[c].Id)!;
                for (var s = 0; s < skus; s++)
                {
                    var ats = _shard.Ats(channel, Sku(s));
                    history[minute % HistoryMinutes, c, s] = ats;
                    drift += Math.Abs(published[c, s] - ats);
                }
            }
            if (minute % 60 == 59)
            {
                outcome.DriftByHour[minute / 60] = drift;
                progress(minute);
            }
        }
        return outcome;
    }

    private void Order(Demand d, int minute, DateTimeOffset now, long[,] published, PriorityQueue<(string, int, int, int), int> picks, Outcome outcome)
    {
        var channel = scenario.Channels[d.Channel];
        if (published[d.Channel, d.Sku] < d.Quantity)
        {
            if (_shard.Ats(_shard.FindChannel(channel.Id)!, Sku(d.Sku)) >= d.Quantity)
            {
                outcome.LostSalesUnits += d.Quantity;
            }
            return;
        }
        var id = "r" + (++_ids).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var result = _shard.CreateReservation(new CreateReservation
        {
            ReservationId = id,
            ChannelId = channel.Id,
            TtlSeconds = 900,
            CorrelationId = id,
            Lines = [new ReservationLineRequest(Sku(d.Sku), d.Quantity, null)],
            Fingerprint = new Fingerprint((ulong)_ids, 1),
        }, now, _fx);
        if (result.Result != ReservationResult.Created)
        {
            // The checkout is refused before the customer pays: no order is taken, none is cancelled.
            return;
        }
        _shard.CommitReservation(id, now, id, _fx);
        outcome.OrdersAccepted++;
        var node = Array.IndexOf(Scenario.Nodes, result.Reservation!.Lines[0].LocationId);
        picks.Enqueue((id, node, d.Sku, d.Quantity), minute + PickDelayMinutes);
    }

    private void Apply(EventType type, int sku, int node, long quantity, int minute, string? reservationId = null, Disposition disposition = Disposition.None)
    {
        var n = ++_ids;
        _shard.ApplyEvent(new StockEvent
        {
            EventId = "e" + n.ToString(System.Globalization.CultureInfo.InvariantCulture),
            Type = type,
            Sku = Sku(sku),
            LocationId = Scenario.Nodes[node],
            Quantity = quantity,
            OccurredAt = Start.AddMinutes(minute),
            Source = "sim",
            CorrelationId = "sim",
            ReservationId = reservationId,
            Disposition = disposition,
            Fingerprint = new Fingerprint((ulong)n, 0),
        }, Start.AddMinutes(minute), _fx);
    }

    private static readonly string[] SkuNames = Enumerable.Range(0, 5000).Select(s => "SKU-" + s.ToString("D4", System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    private static string Sku(int s) => SkuNames[s];
}
