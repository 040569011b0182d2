using System.Globalization;
using System.Text;

namespace Truestock.Simulation.Demo;

/// <summary>One SKU where a channel's emulator does not show the hub's ATS.</summary>
internal sealed record Difference(string Sku, long Hub, long? Shown);

/// <summary>
/// How one channel ended: SKUs that differ from the hub's ATS, SKUs that show fewer units only
/// because a velocity buffer decayed since their last publication (documented: the decay is not
/// republished on its own, so the channel stays on the cautious side), and dead letters.
/// </summary>
internal sealed record ChannelConvergence(DemoChannel Channel, int Skus, List<Difference> Differ, List<Difference> Cautious, List<string> DeadLetters)
{
    public bool Converged => Differ.Count == 0 && DeadLetters.Count == 0;
}

/// <summary>The final check: for every connected channel and every SKU, the hub's ATS against what the emulator shows.</summary>
internal static class Convergence
{
    public static async Task<List<ChannelConvergence>> CheckAsync(HubClient hub, IEnumerable<DemoChannel> channels, CancellationToken ct)
    {
        var result = new List<ChannelConvergence>();
        foreach (var channel in channels.Where(c => c.Connected))
        {
            var query = string.Join('&', Catalog.Skus.Select(s => "sku=" + Uri.EscapeDataString(s)));
            var answer = await hub.GetAsync($"/v1/channels/{channel.Id}/availability?{query}", ct);
            if (!answer.Ok)
            {
                throw new DemoException($"GET /v1/channels/{channel.Id}/availability answered {answer.Problem}; the convergence check cannot run.");
            }
            var differ = new List<Difference>();
            var cautious = new List<Difference>();
            foreach (var item in answer.Body!["items"]!.AsArray())
            {
                var sku = item!["sku"]!.GetValue<string>();
                var ats = item["available"]!.GetValue<long>();
                var shown = channel.Shows!(sku);
                if (shown == ats)
                {
                    continue;
                }
                var velocity = item["buffer"]?["velocityUnitsPerSecond"]?.GetValue<double>() ?? 0;
                (shown < ats && velocity > 0 ? cautious : differ).Add(new Difference(sku, ats, shown));
            }
            var letters = new List<string>();
            var dead = await hub.GetAsync($"/v1/channels/{channel.Id}/dead-letters?limit=5", ct);
            if (dead.Ok)
            {
                letters.AddRange(dead.Body!["items"]!.AsArray().Select(d => $"{d!["sku"]}: {d["error"]}"));
            }
            result.Add(new ChannelConvergence(channel, Catalog.Skus.Length, differ, cautious, letters));
        }
        return result;
    }
}

/// <summary>The summary printed when the demo stops.</summary>
internal static class Summary
{
    public static void Print(DemoOptions options, Traffic traffic, LiveView view, IReadOnlyDictionary<string, ChannelStatus> channels,
        bool drained, double drainSeconds, List<ChannelConvergence> convergence)
    {
        var s = traffic.Stats;
        var sb = new StringBuilder();
        sb.AppendLine();
        sb.AppendLine("==== Truestock demo: summary ====");
        var flash = traffic.FlashSales.Count == 0 ? "; no flash sale (the run was too short for one)"
            : "; flash sale on " + string.Join(", then on ", traffic.FlashSales.Select(f => Inv($"{string.Join(" and ", f.Skus)} from {f.StartSeconds:0} s to {f.EndSeconds:0} s")));
        sb.AppendLine(Inv($"Traffic ran {traffic.Elapsed:0} s (seed {options.Seed}, {options.Rate} customers/s){flash}."));
        sb.AppendLine(Inv($"  {Read(ref s.EventsSent):N0} events: {Read(ref s.TillSales):N0} till sales, {Read(ref s.Shipments):N0} shipments, {Read(ref s.Returns):N0} returns ({Read(ref s.Inspections):N0} inspected), {Read(ref s.Replenishments):N0} supplier deliveries"));
        sb.AppendLine(Inv($"  {Read(ref s.OrdersPlaced):N0} online orders: {Read(ref s.OrdersHeld):N0} reserved ({Read(ref s.Commits):N0} committed, {Read(ref s.Releases):N0} released), {Read(ref s.OrdersRefused):N0} refused for lack of ATS"));
        sb.AppendLine(Inv($"  {Read(ref s.TillNotOnShelf):N0} till customers found their item not on the shelf (nothing sold)")
            + (Read(ref s.Dropped) > 0 ? Inv($"; {Read(ref s.Dropped):N0} orders not placed because the generator's queue was full (the hub was slower than --rate)") : ""));
        if (traffic.UnshippedAtStop > 0)
        {
            sb.AppendLine(Inv($"  {traffic.UnshippedAtStop} committed orders were not shipped yet when the traffic stopped (their units stay allocated)"));
        }
        var (events, reservations) = view.Averages;
        sb.AppendLine(Inv($"  hub (from /metrics): {events:0.0} events/s, {reservations:0.0} reservations/s on average; hub errors seen by the traffic: {Read(ref s.HubErrors)}"));
        if (Volatile.Read(ref s.LastHubError) is { } error)
        {
            sb.AppendLine($"    last: {error}");
        }
        sb.AppendLine(Inv($"Oversells: {view.OversellsTotal} (truestock_oversells_total): {view.OversellsFromReservations} from reservation traffic (must be 0), {view.OversellsFromTills} from till sales of units promised online")
            + (view.OversellsUnclassified > 0 ? Inv($", {view.OversellsUnclassified} that GET /v1/exceptions?type=oversell did not list.") : "."));
        sb.AppendLine();
        sb.AppendLine("Channels  emulator          published   calls  throttles  dead letters  peak backlog  degraded for  emulator saw (requests, 429s)");
        foreach (var channel in convergence.Select(c => c.Channel))
        {
            if (!channels.TryGetValue(channel.Id, out var c))
            {
                continue;
            }
            sb.AppendLine(Inv($"  {channel.Id,-7} {channel.Emulator,-17} {c.Published,9:N0} {c.Calls,7:N0} {c.Throttles,10:N0} {c.DeadLetters,13} {view.BacklogPeak.GetValueOrDefault(channel.Id),13} {view.DegradedSeconds.GetValueOrDefault(channel.Id),11:0} s  {channel.EmulatorRequests!(),8:N0}, {channel.EmulatorThrottles!():N0}"));
        }
        sb.AppendLine();
        sb.AppendLine(drained
            ? Inv($"Convergence: after the traffic stopped, every backlog drained in {drainSeconds:0.0} s; then, for each of the {Catalog.Skus.Length} SKUs:")
            : Inv($"Convergence: after {drainSeconds:0} s some channels still had a backlog (see above); for each of the {Catalog.Skus.Length} SKUs:"));
        foreach (var c in convergence)
        {
            var same = c.Skus - c.Differ.Count - c.Cautious.Count;
            var line = new StringBuilder(Inv($"  {c.Channel.Id,-8} ({c.Channel.Emulator}): {same}/{c.Skus} SKUs show exactly the hub's ATS"));
            if (c.Cautious.Count > 0)
            {
                line.Append(c.Cautious.Count == 1
                    ? "; 1 shows fewer units, because its velocity buffer has decayed since its last change"
                    : Inv($"; {c.Cautious.Count} show fewer units, because their velocity buffer has decayed since their last change"));
                line.Append(Inv($" and the decay is not republished on its own (docs/channels.md):{Environment.NewLine}             {List(c.Cautious)}"));
            }
            if (c.Differ.Count > 0)
            {
                line.Append(Inv($"; DIFFER: {List(c.Differ)}"));
            }
            if (c.DeadLetters.Count > 0)
            {
                line.Append(Inv($"; DEAD LETTERS: {string.Join("; ", c.DeadLetters)}"));
            }
            sb.AppendLine(line.ToString());
        }
        var failed = convergence.Where(c => !c.Converged).Select(c => c.Channel.Id).ToList();
        sb.AppendLine(failed.Count == 0
            ? "Result: every channel converged to the hub's ATS (no channel shows more than the hub can sell)."
            : $"Result: NOT converged on {string.Join(", ", failed)} (listed above). See GET /v1/channels/{{id}}/sync and /dead-letters; please report it with this output.");
        if (view.OversellsFromReservations + view.OversellsUnclassified > 0)
        {
            sb.AppendLine("Result: oversells that are not from till sales, which must never happen; please report it with this output (GET /v1/exceptions?type=oversell).");
        }
        Console.Write(sb.ToString());
    }

    private static string List(List<Difference> items) =>
        string.Join(", ", items.Take(8).Select(d => $"{d.Sku} hub {d.Hub} shown {d.Shown?.ToString(CultureInfo.InvariantCulture) ?? "nothing"}"))
        + (items.Count > 8 ? $", and {items.Count - 8} more" : "");

    private static long Read(ref long counter) => TrafficStats.Read(ref counter);

    private static string Inv(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
