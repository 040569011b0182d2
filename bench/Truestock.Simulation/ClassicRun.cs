namespace Truestock.Simulation;

/// <summary>
/// The usual integration: each channel polls the ERP's stock every 15 minutes and sells from its
/// own copy; orders go to the ERP, which allocates from what it believes; the store uploads its
/// till sales once an hour; returns are booked as sellable before anyone inspects them.
/// </summary>
internal sealed class ClassicRun(Scenario scenario)
{
    private const int PollMinutes = 15;
    private const int PosUploadMinutes = 60;
    private const int PickDelayMinutes = 60;

    public Outcome Run(Action<int> progress)
    {
        var skus = scenario.Skus;
        var nodes = Scenario.Nodes.Length;
        var channels = scenario.Channels;
        var sellable = new long[skus, nodes];
        var erpOnHand = new long[skus, nodes];
        var allocated = new long[skus, nodes];
        var pendingPos = new long[skus];
        var cache = new long[channels.Length, skus];
        var picks = new PriorityQueue<(int Node, int Sku, int Quantity), int>();
        var outcome = new Outcome("classic", scenario.Minutes / 60);
        for (var s = 0; s < skus; s++)
        {
            for (var n = 0; n < nodes; n++)
            {
                sellable[s, n] = erpOnHand[s, n] = scenario.InitialStock[s, n];
            }
        }

        long TrueAts(int c, int s)
        {
            long pool = 0;
            foreach (var n in channels[c].Nodes)
            {
                pool += Math.Max(0, sellable[s, n] - allocated[s, n]);
            }
            return Math.Max(0, pool - channels[c].BufferUnits);
        }

        var next = 0;
        var demands = scenario.Demands;
        for (var minute = 0; minute < scenario.Minutes; minute++)
        {
            if (minute % PollMinutes == 0)
            {
                for (var c = 0; c < channels.Length; c++)
                {
                    for (var s = 0; s < skus; s++)
                    {
                        long pool = 0;
                        foreach (var n in channels[c].Nodes)
                        {
                            pool += Math.Max(0, erpOnHand[s, n] - allocated[s, n]);
                        }
                        cache[c, s] = Math.Max(0, pool - channels[c].BufferUnits);
                    }
                }
            }
            if (minute % PosUploadMinutes == 0)
            {
                for (var s = 0; s < skus; s++)
                {
                    erpOnHand[s, Scenario.Store] -= pendingPos[s];
                    pendingPos[s] = 0;
                }
            }
            for (; next < demands.Count && demands[next].Minute == minute; next++)
            {
                var d = demands[next];
                switch (d.Kind)
                {
                    case DemandKind.Order:
                        if (cache[d.Channel, d.Sku] < d.Quantity)
                        {
                            if (TrueAts(d.Channel, d.Sku) >= d.Quantity)
                            {
                                outcome.LostSalesUnits += d.Quantity;
                            }
                            break;
                        }
                        cache[d.Channel, d.Sku] -= d.Quantity;
                        outcome.OrdersAccepted++;
                        var node = Array.FindIndex(channels[d.Channel].Nodes, n => erpOnHand[d.Sku, n] - allocated[d.Sku, n] >= d.Quantity);
                        node = node < 0 ? -1 : channels[d.Channel].Nodes[node];
                        if (node < 0)
                        {
                            // The channel sold what the ERP no longer had: the order is cancelled.
                            outcome.OrdersCancelled++;
                            outcome.OversoldUnits += d.Quantity;
                            break;
                        }
                        allocated[d.Sku, node] += d.Quantity;
                        picks.Enqueue((node, d.Sku, d.Quantity), minute + PickDelayMinutes);
                        break;
                    case DemandKind.PosSale:
                        if (sellable[d.Sku, Scenario.Store] >= 1)
                        {
                            sellable[d.Sku, Scenario.Store]--;
                            pendingPos[d.Sku]++;
                            outcome.PosUnitsSold++;
                        }
                        break;
                    case DemandKind.Return:
                        // The ERP books every return as sellable at once; a damaged unit is not.
                        erpOnHand[d.Sku, Scenario.Warehouse]++;
                        if (!d.Damaged)
                        {
                            sellable[d.Sku, Scenario.Warehouse]++;
                        }
                        break;
                    case DemandKind.Delivery:
                        sellable[d.Sku, Scenario.Warehouse] += d.Quantity;
                        erpOnHand[d.Sku, Scenario.Warehouse] += d.Quantity;
                        break;
                }
            }
            while (picks.TryPeek(out var pick, out var due) && due <= minute)
            {
                picks.Dequeue();
                allocated[pick.Sku, pick.Node] -= pick.Quantity;
                if (sellable[pick.Sku, pick.Node] >= pick.Quantity)
                {
                    sellable[pick.Sku, pick.Node] -= pick.Quantity;
                    erpOnHand[pick.Sku, pick.Node] -= pick.Quantity;
                    outcome.UnitsShipped += pick.Quantity;
                }
                else
                {
                    outcome.OrdersCancelled++;
                    outcome.OversoldUnits += pick.Quantity;
                }
            }
            if (minute % 60 == 59)
            {
                double drift = 0;
                for (var c = 0; c < channels.Length; c++)
                {
                    for (var s = 0; s < skus; s++)
                    {
                        drift += Math.Abs(cache[c, s] - TrueAts(c, s));
                    }
                }
                outcome.DriftByHour[minute / 60] = drift;
                progress(minute);
            }
        }
        return outcome;
    }
}
