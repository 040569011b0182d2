using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;

namespace Truestock.Simulation.Demo;

/// <summary>What the traffic generator did so far; written by the generator, read by the live view (Interlocked).</summary>
internal sealed class TrafficStats
{
    public long TillSales;
    public long TillNotOnShelf;
    public long OrdersPlaced;
    public long OrdersHeld;
    public long OrdersRefused;
    public long Commits;
    public long Releases;
    public long Shipments;
    public long Returns;
    public long Inspections;
    public long Replenishments;
    public long EventsSent;
    public long HubErrors;
    public long Dropped;
    public string? LastHubError;

    public static long Read(ref long counter) => Interlocked.Read(ref counter);
}

/// <summary>A flash sale: several times the demand on a few SKUs for a while.</summary>
internal sealed record FlashSale(string[] Skus, double StartSeconds, double EndSeconds);

/// <summary>
/// The synthetic store and web traffic. A single loop ticks ten times a second and decides
/// everything with one seeded <see cref="Random"/>, so the same seed makes the same choices; the
/// HTTP calls it starts run concurrently (at most <see cref="InFlightMax"/>), and their answers are
/// handed back to the loop, which alone owns the generator's state (no locks).
///
/// What a retailer's systems would send: till sales (<c>sold</c>), online orders as reservations
/// that are committed (80%) or released (20%), shipments of committed orders, returns
/// (<c>return_received</c>, then <c>inspected</c>), and purchase-order receipts when a location runs
/// low. A flash sale multiplies the demand on two SKUs so that urgent publications and buffers show.
/// </summary>
internal sealed class Traffic
{
    private const double TickSeconds = 0.1;

    /// <summary>HTTP calls in flight at once; beyond it the loop waits (backpressure instead of a growing queue).</summary>
    private const int InFlightMax = 32;

    /// <summary>Follow-ups waiting for their time (decisions, shipments, returns, receipts); beyond it new orders are dropped.</summary>
    private const int ScheduledMax = 20_000;

    /// <summary>Events per POST /v1/events (the API takes up to 1,000).</summary>
    private const int EventsPerRequestMax = 1000;

    private static readonly (string Channel, double Share)[] OnlineShares = [("web", 0.45), ("amazon", 0.25), ("walmart", 0.20), ("b2b", 0.10)];

    private readonly HubClient _hub;
    private readonly Random _random;
    private readonly string _runId;
    private readonly int _rate;
    private readonly int? _seconds;
    private readonly Stopwatch _clock = new();
    private readonly SemaphoreSlim _inFlight = new(InFlightMax, InFlightMax);
    private readonly ConcurrentQueue<Action> _answers = new();
    private readonly PriorityQueue<Step, double> _scheduled = new();
    private readonly List<JsonObject> _events = [];
    private readonly double[] _popularity;
    private readonly Dictionary<(string Store, string Sku), long> _shelf = [];
    private readonly Dictionary<(string Store, string Sku), long> _setAside = [];
    private readonly HashSet<(string Sku, string Location)> _purchaseOrders = [];
    private readonly Dictionary<string, double> _recentDemand = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _abort = new();
    private long _ids;
    private int _replenishCursor;
    private double _nextReplenishCheck;
    private double _nextHotPick;
    private double _customerBudget;
    private double _flashBudget;
    private int _heldUndecided;
    private bool _settling;
    private FlashSale? _flash;
    private FlashSale? _lastFlash;
    private readonly List<FlashSale> _flashSales = [];
    private string[] _hot = [];

    public Traffic(HubClient hub, DemoOptions options, string runId)
    {
        _hub = hub;
        _random = new Random(options.Seed);
        _runId = runId;
        _rate = options.Rate;
        _seconds = options.Seconds;
        // A few best sellers and a long tail: weight 1/(rank+2)^0.8 over a seeded ranking.
        var ranking = Catalog.Skus.Select((_, i) => i).OrderBy(_ => _random.Next()).ToArray();
        _popularity = new double[Catalog.Skus.Length];
        for (var rank = 0; rank < ranking.Length; rank++)
        {
            _popularity[ranking[rank]] = 1 / Math.Pow(rank + 2, 0.8);
        }
    }

    public TrafficStats Stats { get; } = new();

    /// <summary>Seconds since the traffic started.</summary>
    public double Elapsed => _clock.Elapsed.TotalSeconds;

    /// <summary>The flash sale running now, if any.</summary>
    public FlashSale? CurrentFlash => Volatile.Read(ref _flash);

    /// <summary>The last flash sale that ran (or runs).</summary>
    public FlashSale? LastFlash => Volatile.Read(ref _lastFlash);

    /// <summary>Every flash sale so far (read after the traffic stopped).</summary>
    public IReadOnlyList<FlashSale> FlashSales => _flashSales;

    /// <summary>SKUs worth watching: the flash sale's and the most demanded lately.</summary>
    public string[] HotSkus => Volatile.Read(ref _hot);

    /// <summary>Orders committed whose shipment had not happened when the traffic stopped (their units stay allocated).</summary>
    public int UnshippedAtStop { get; private set; }

    /// <summary>Remembers the opening stock on the tills' shelves (the generator sends it itself, before the traffic).</summary>
    public void StockShelf(string store, string sku, long quantity) => _shelf[(store, sku)] = _shelf.GetValueOrDefault((store, sku)) + quantity;

    /// <summary>Runs until <paramref name="stop"/>; then decides every held order, waits for its calls, and returns.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        _clock.Start();
        _hot = [.. Catalog.Skus.Take(4)];
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(TickSeconds));
        try
        {
            while (!stop.IsCancellationRequested && await timer.WaitForNextTickAsync(stop))
            {
                await TickAsync();
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Ctrl+C or --seconds: settle below.
        }
        await SettleAsync();
    }

    /// <summary>Stops the calls in flight at once (the demo is shutting down on an error).</summary>
    public void Abort() => _abort.Cancel();

    // ------------------------------------------------------------------ the loop

    private async Task TickAsync()
    {
        RunAnswers();
        var now = Elapsed;
        UpdateFlashSale(now);

        // Customers: a Poisson-like stream at the configured rate; 40% at the tills, 60% online.
        _customerBudget += _rate * TickSeconds * (0.5 + _random.NextDouble());
        while (_customerBudget >= 1)
        {
            _customerBudget--;
            if (_random.NextDouble() < 0.4)
            {
                TillSale();
            }
            else
            {
                await OnlineOrderAsync(PickSku());
            }
        }
        if (_flash is { } flash)
        {
            // The flash sale's extra demand, online only: about 60% of the normal rate again, on two SKUs.
            _flashBudget += Math.Max(4, _rate * 0.6) * TickSeconds;
            while (_flashBudget >= 1)
            {
                _flashBudget--;
                await OnlineOrderAsync(flash.Skus[_random.Next(flash.Skus.Length)], _random.NextDouble() < 0.6 ? "web" : "amazon");
            }
        }

        while (_scheduled.TryPeek(out _, out var due) && due <= now)
        {
            await _scheduled.Dequeue().Run();
        }
        if (now >= _nextReplenishCheck)
        {
            _nextReplenishCheck = now + 0.5;
            await CheckStockAsync();
        }
        if (now >= _nextHotPick)
        {
            _nextHotPick = now + 5;
            PickHotSkus();
        }
        await FlushEventsAsync();
    }

    private void UpdateFlashSale(double now)
    {
        // With --seconds N, one flash sale from about a quarter of the run; without, one every two minutes from 20 s.
        var (first, length, every) = _seconds is { } total
            ? (Math.Clamp(total * 0.25, 5, 20), Math.Clamp(total * 0.3, 5, 15), 120.0)
            : (20.0, 15.0, 120.0);
        if (_flash is { } running && now >= running.EndSeconds)
        {
            Volatile.Write(ref _flash, null);
        }
        var index = (int)Math.Floor((now - first) / every);
        var start = first + index * every;
        if (_flash is null && index >= 0 && now < start + length && (_lastFlash is null || _lastFlash.StartSeconds < start)
            && (_seconds is null || start + length <= _seconds.Value))
        {
            // Two of the ten best sellers, not the ones of the last flash sale.
            var candidates = Enumerable.Range(0, Catalog.Skus.Length).OrderByDescending(i => _popularity[i]).Take(10)
                .Select(i => Catalog.Skus[i]).Where(s => _lastFlash?.Skus.Contains(s) != true).ToList();
            var skus = candidates.OrderBy(_ => _random.Next()).Take(2).ToArray();
            var flash = new FlashSale(skus, start, start + length);
            Volatile.Write(ref _flash, flash);
            Volatile.Write(ref _lastFlash, flash);
            _flashSales.Add(flash);
        }
    }

    private void PickHotSkus()
    {
        foreach (var sku in _recentDemand.Keys.ToList())
        {
            _recentDemand[sku] *= 0.5;
        }
        var flash = _flash?.Skus ?? _lastFlash?.Skus ?? [];
        var busiest = _recentDemand.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => kv.Key).Where(s => !flash.Contains(s)).Take(5 - flash.Length);
        Volatile.Write(ref _hot, [.. flash, .. busiest]);
    }

    // ------------------------------------------------------------------ store tills

    private void TillSale()
    {
        var store = Catalog.Stores[_random.Next(Catalog.Stores.Length)];
        var sku = PickSku();
        var quantity = _random.NextDouble() < 0.85 ? 1 : 2;
        // A till sells what is on the shelf and not set aside for an online order picked in the store.
        var free = _shelf.GetValueOrDefault((store, sku)) - _setAside.GetValueOrDefault((store, sku));
        if (free < quantity)
        {
            Interlocked.Increment(ref Stats.TillNotOnShelf);
            return;
        }
        _shelf[(store, sku)] -= quantity;
        Demand(sku, quantity);
        Event("sold", sku, store, quantity, $"pos-{store}");
        Interlocked.Increment(ref Stats.TillSales);
    }

    // ------------------------------------------------------------------ online orders

    private sealed class Order
    {
        public required string Id { get; init; }
        public required string Channel { get; init; }
        public required bool WillCommit { get; init; }
        public List<(string Sku, long Quantity, string Location)> Lines { get; } = [];
    }

    private async Task OnlineOrderAsync(string firstSku, string? channel = null)
    {
        if (_scheduled.Count >= ScheduledMax)
        {
            Interlocked.Increment(ref Stats.Dropped);
            return;
        }
        channel ??= PickChannel();
        var b2b = channel == "b2b";
        var lines = new JsonArray();
        var skus = new List<string> { firstSku };
        var extra = b2b ? _random.Next(0, 3) : _random.NextDouble() < 0.25 ? 1 : 0;
        for (var i = 0; i < extra; i++)
        {
            var sku = PickSku();
            if (!skus.Contains(sku))
            {
                skus.Add(sku);
            }
        }
        foreach (var sku in skus)
        {
            var quantity = b2b ? _random.Next(3, 11) : _random.NextDouble() < 0.7 ? 1 : _random.Next(2, 4);
            lines.Add(new JsonObject { ["sku"] = sku, ["quantity"] = quantity });
            Demand(sku, quantity);
        }
        var order = new Order { Id = $"{_runId}-{channel}-{NextId()}", Channel = channel, WillCommit = _random.NextDouble() < 0.8 };
        var body = new JsonObject { ["reservationId"] = order.Id, ["channelId"] = channel, ["ttlSeconds"] = 600, ["lines"] = lines };
        Interlocked.Increment(ref Stats.OrdersPlaced);
        await LaunchAsync(async ct =>
        {
            var answer = await _hub.PostAsync("/v1/reservations", body, ct);
            Answer(() => OnReservation(order, answer));
        });
    }

    private void OnReservation(Order order, HubAnswer answer)
    {
        if (answer.Status == HttpStatusCode.Created)
        {
            foreach (var line in answer.Body!["lines"]!.AsArray())
            {
                var sku = line!["sku"]!.GetValue<string>();
                var location = line["locationId"]!.GetValue<string>();
                var quantity = line["quantity"]!.GetValue<long>();
                order.Lines.Add((sku, quantity, location));
                if (Catalog.Stores.Contains(location))
                {
                    _setAside[(location, sku)] = _setAside.GetValueOrDefault((location, sku)) + quantity;
                }
            }
            Interlocked.Increment(ref Stats.OrdersHeld);
            _heldUndecided++;
            // The customer pays (commit) or abandons the checkout (release) a moment later.
            Schedule(_random.NextDouble() * 2.5 + 0.5, StepKind.Decision, () => DecideAsync(order));
        }
        else if (answer.Status == HttpStatusCode.Conflict && answer.Body?["type"]?.GetValue<string>()?.EndsWith("insufficient-stock", StringComparison.Ordinal) == true)
        {
            // Not enough ATS: the hub refuses, nothing is held, nothing is oversold.
            Interlocked.Increment(ref Stats.OrdersRefused);
        }
        else
        {
            HubError($"POST /v1/reservations answered {answer.Problem}");
        }
    }

    private async Task DecideAsync(Order order)
    {
        _heldUndecided--;
        var action = order.WillCommit ? "commit" : "release";
        await LaunchAsync(async ct =>
        {
            var answer = await _hub.PostAsync($"/v1/reservations/{order.Id}/{action}", null, ct);
            Answer(() =>
            {
                if (!answer.Ok)
                {
                    HubError($"POST /v1/reservations/{order.Id}/{action} answered {answer.Problem}");
                    return;
                }
                if (order.WillCommit)
                {
                    Interlocked.Increment(ref Stats.Commits);
                    if (_settling)
                    {
                        UnshippedAtStop++;
                    }
                    else
                    {
                        // Picked and shipped a few seconds later (from the warehouse, the 3PL or the flagship store).
                        Schedule(_random.NextDouble() * 3.5 + 1.5, StepKind.Shipment, () => Ship(order));
                    }
                }
                else
                {
                    Interlocked.Increment(ref Stats.Releases);
                    ReleaseSetAside(order);
                }
            });
        });
    }

    private void Ship(Order order)
    {
        foreach (var (sku, quantity, location) in order.Lines)
        {
            var shipped = Event("shipped", sku, location, quantity, location switch { "WH1" => "wms", "3PL1" => "3pl", _ => $"store-{location}" });
            shipped["reservationId"] = order.Id;
            if (Catalog.Stores.Contains(location))
            {
                _shelf[(location, sku)] = _shelf.GetValueOrDefault((location, sku)) - quantity;
            }
            // About one shipment line in twenty comes back.
            if (_random.NextDouble() < 0.05)
            {
                Schedule(_random.NextDouble() * 6 + 4, StepKind.Other, () => ReturnReceived(sku));
            }
        }
        ReleaseSetAside(order);
        Interlocked.Increment(ref Stats.Shipments);
    }

    private void ReleaseSetAside(Order order)
    {
        foreach (var (sku, quantity, location) in order.Lines.Where(l => Catalog.Stores.Contains(l.Location)))
        {
            _setAside[(location, sku)] -= quantity;
        }
    }

    // ------------------------------------------------------------------ returns

    private void ReturnReceived(string sku)
    {
        // Returns go to the warehouse and wait in inspection (not sellable) until they are checked.
        Event("return_received", sku, "WH1", 1, "returns");
        Interlocked.Increment(ref Stats.Returns);
        var disposition = _random.NextDouble() < 0.8 ? "restock" : "damaged";
        Schedule(_random.NextDouble() * 4 + 2, StepKind.Other, () =>
        {
            Event("inspected", sku, "WH1", 1, "returns")["disposition"] = disposition;
            Interlocked.Increment(ref Stats.Inspections);
        });
    }

    // ------------------------------------------------------------------ replenishment

    /// <summary>
    /// Looks at a few SKUs' stock (the flash sale's every time, the rest in turn) through
    /// <c>GET /v1/availability/{sku}</c>, and orders from the supplier where a location is low.
    /// </summary>
    private async Task CheckStockAsync()
    {
        var skus = new List<string>(_flash?.Skus ?? []);
        for (var i = 0; i < 3; i++)
        {
            skus.Add(Catalog.Skus[_replenishCursor++ % Catalog.Skus.Length]);
        }
        foreach (var sku in skus.Distinct())
        {
            await LaunchAsync(async ct =>
            {
                var answer = await _hub.GetAsync($"/v1/availability/{sku}", ct);
                Answer(() => OnStock(sku, answer));
            });
        }
    }

    private void OnStock(string sku, HubAnswer answer)
    {
        if (!answer.Ok)
        {
            HubError($"GET /v1/availability/{sku} answered {answer.Problem}");
            return;
        }
        foreach (var position in answer.Body!["locations"]!.AsArray())
        {
            var location = position!["locationId"]!.GetValue<string>();
            var available = position["available"]!.GetValue<long>();
            // Reorder point, order quantity and supplier lead time per kind of location.
            var (reorderAt, min, max, leadSeconds) = location switch
            {
                "WH1" => (10, 30, 60, 8.0),
                "3PL1" => (5, 15, 30, 8.0),
                _ => (2, 4, 9, 5.0),
            };
            if (available > reorderAt || _settling || !_purchaseOrders.Add((sku, location)))
            {
                continue;
            }
            var quantity = _random.Next(min, max + 1);
            Schedule(leadSeconds * (0.6 + _random.NextDouble() * 0.8), StepKind.Other, () =>
            {
                _purchaseOrders.Remove((sku, location));
                Event("received", sku, location, quantity, location switch { "WH1" => "wms", "3PL1" => "3pl", _ => $"store-{location}" });
                if (Catalog.Stores.Contains(location))
                {
                    _shelf[(location, sku)] = _shelf.GetValueOrDefault((location, sku)) + quantity;
                }
                Interlocked.Increment(ref Stats.Replenishments);
            });
        }
    }

    // ------------------------------------------------------------------ plumbing

    private string PickSku()
    {
        var total = _popularity.Sum();
        var x = _random.NextDouble() * total;
        for (var i = 0; i < _popularity.Length; i++)
        {
            x -= _popularity[i];
            if (x <= 0)
            {
                return Catalog.Skus[i];
            }
        }
        return Catalog.Skus[^1];
    }

    private string PickChannel()
    {
        var x = _random.NextDouble();
        foreach (var (channel, share) in OnlineShares)
        {
            x -= share;
            if (x <= 0)
            {
                return channel;
            }
        }
        return OnlineShares[^1].Channel;
    }

    private void Demand(string sku, long quantity) => _recentDemand[sku] = _recentDemand.GetValueOrDefault(sku) + quantity;

    private long NextId() => ++_ids;

    private JsonObject Event(string type, string sku, string location, long quantity, string source)
    {
        var e = new JsonObject
        {
            ["eventId"] = $"{_runId}-e{NextId()}",
            ["type"] = type,
            ["sku"] = sku,
            ["locationId"] = location,
            ["quantity"] = quantity,
            ["occurredAt"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
            ["source"] = source,
        };
        _events.Add(e);
        return e;
    }

    /// <summary>Sends the tick's events in one request (a real integration batches too). Events are facts: a 503 is retried.</summary>
    private async Task FlushEventsAsync()
    {
        while (_events.Count > 0)
        {
            var batch = _events.Take(EventsPerRequestMax).ToList();
            _events.RemoveRange(0, batch.Count);
            var body = new JsonObject { ["events"] = new JsonArray([.. batch]) };
            await LaunchAsync(async ct =>
            {
                for (var attempt = 1; ; attempt++)
                {
                    var answer = await _hub.PostAsync("/v1/events", body, ct);
                    if (answer.Status == HttpStatusCode.ServiceUnavailable && attempt < 5)
                    {
                        await Task.Delay(TimeSpan.FromSeconds(attempt), ct);
                        continue;
                    }
                    Answer(() => OnEvents(batch.Count, answer));
                    return;
                }
            });
        }
    }

    private void OnEvents(int count, HubAnswer answer)
    {
        if (!answer.Ok)
        {
            HubError($"POST /v1/events answered {answer.Problem}");
            return;
        }
        Interlocked.Add(ref Stats.EventsSent, count);
        foreach (var result in answer.Body!["results"]!.AsArray())
        {
            if (result!["status"]!.GetValue<string>() == "rejected")
            {
                HubError($"event {result["eventId"]} rejected: {result["error"]?["detail"]}");
            }
        }
    }

    private enum StepKind
    {
        Decision,
        Shipment,
        Other,
    }

    /// <summary>A follow-up due later: a checkout's decision, a shipment, a return, a supplier delivery.</summary>
    private readonly record struct Step(StepKind Kind, Func<Task> Run);

    private void Schedule(double afterSeconds, StepKind kind, Func<Task> run) => _scheduled.Enqueue(new Step(kind, run), Elapsed + afterSeconds);

    private void Schedule(double afterSeconds, StepKind kind, Action run) => Schedule(afterSeconds, kind, () =>
    {
        run();
        return Task.CompletedTask;
    });

    /// <summary>Hands an answer back to the loop, which alone touches the generator's state.</summary>
    private void Answer(Action onLoop) => _answers.Enqueue(onLoop);

    private void RunAnswers()
    {
        while (_answers.TryDequeue(out var answer))
        {
            answer();
        }
    }

    private void HubError(string message)
    {
        Interlocked.Increment(ref Stats.HubErrors);
        Volatile.Write(ref Stats.LastHubError, message);
    }

    /// <summary>Starts a call once fewer than <see cref="InFlightMax"/> are running; the loop waits otherwise.</summary>
    private async Task LaunchAsync(Func<CancellationToken, Task> call)
    {
        var ct = _abort.Token;
        await _inFlight.WaitAsync(ct);
        _ = Task.Run(async () =>
        {
            try
            {
                await call(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The demo is shutting down.
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException or System.Text.Json.JsonException)
            {
                Answer(() => HubError($"the hub did not answer: {e.Message}"));
            }
            finally
            {
                _inFlight.Release();
            }
        }, CancellationToken.None);
    }

    private bool Idle => _inFlight.CurrentCount == InFlightMax && _answers.IsEmpty;

    /// <summary>
    /// After the traffic: every held order gets its decision now (so nothing stays held), and the
    /// calls in flight finish; shipments, returns and receipts not yet due are left out.
    /// </summary>
    private async Task SettleAsync()
    {
        _settling = true;
        if (_flash is { } running)
        {
            // Cut short by the end of the traffic: record when it really ended.
            _flashSales[^1] = running with { EndSeconds = Elapsed };
            Volatile.Write(ref _flash, null);
        }
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            RunAnswers();
            // Only decisions run; the rest (shipments, returns, receipts) is dropped.
            while (_scheduled.TryDequeue(out var step, out _))
            {
                if (step.Kind == StepKind.Decision)
                {
                    await step.Run();
                }
                else if (step.Kind == StepKind.Shipment)
                {
                    UnshippedAtStop++;
                }
            }
            await FlushEventsAsync();
            if (Idle && _heldUndecided == 0 && _scheduled.Count == 0)
            {
                break;
            }
            await Task.Delay(50);
        }
        _clock.Stop();
    }
}
