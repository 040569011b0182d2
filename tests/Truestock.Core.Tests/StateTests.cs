using static Truestock.Core.Tests.World;

namespace Truestock.Core.Tests;

/// <summary>Master data, safety stock, snapshots (Export/Import) and idempotency retention (Prune).</summary>
public sealed class StateTests
{
    private readonly World _w = new();

    // ------------------------------------------------------------------ master data

    [Fact]
    public void location_is_created_then_updated()
    {
        var shard = new Shard();

        Assert.Equal(MasterDataResult.Created, shard.PutLocation(new Location("L1", "Store", LocationType.Store)).Result);
        Assert.Equal(MasterDataResult.Updated, shard.PutLocation(new Location("L1", "Flagship", LocationType.Store)).Result);

        Assert.Equal("Flagship", shard.FindLocation("L1")!.Name);
        Assert.Single(shard.Locations);
    }

    [Fact]
    public void channel_is_created_then_updated()
    {
        Assert.Equal(MasterDataResult.Created, _w.Shard.PutChannel(new Channel("app", "App", ["L1"], 100, 0, null, null)).Result);
        Assert.Equal(MasterDataResult.Updated, _w.Shard.PutChannel(new Channel("app", "App", ["L2", "L1"], 80, 1, 5, "{}")).Result);

        Assert.Equal(["L2", "L1"], _w.Shard.FindChannel("app")!.Locations);
        Assert.Equal(3, _w.Shard.Channels.Count());
    }

    [Fact]
    public void channel_sourcing_from_an_undeclared_location_is_rejected()
    {
        var outcome = _w.Shard.PutChannel(new Channel("app", "App", ["L1", "nowhere"], 100, 0, null, null));

        Assert.Equal((MasterDataResult.Rejected, RejectionTypes.UnknownLocation), (outcome.Result, outcome.ErrorType));
        Assert.Contains("nowhere", outcome.ErrorDetail, StringComparison.Ordinal);
        Assert.Null(_w.Shard.FindChannel("app"));
    }

    [Fact]
    public void shard_refuses_a_retention_below_one_day()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Shard(0));
        Assert.Equal(TimeSpan.FromDays(30), new Shard().IdempotencyRetention);
    }

    // ------------------------------------------------------------------ safety stock

    [Fact]
    public void safety_stock_raise_beyond_available_is_refused()
    {
        _w.Stock(10);
        _w.Reserve("r1", "web", Line("A", 4));
        var before = _w.State();
        _w.Fx.Clear();

        var outcome = _w.Shard.SetSafetyStock("A", "L1", 7, _w.Now, "corr", _w.Fx);

        Assert.Equal((MasterDataResult.Rejected, RejectionTypes.InsufficientStock), (outcome.Result, outcome.ErrorType));
        Assert.Equal(before, _w.State());
        Assert.Empty(_w.Fx.Ledger);
    }

    [Fact]
    public void safety_stock_can_take_every_available_unit()
    {
        _w.Stock(10);
        _w.Shard.SetSafetyStock("A", "L1", 2, _w.Now, "corr", _w.Fx);
        _w.Fx.Clear();

        var outcome = _w.Shard.SetSafetyStock("A", "L1", 10, _w.Now, "corr", _w.Fx);

        Assert.Equal(MasterDataResult.Updated, outcome.Result);
        Assert.Equal(10, _w.Pos().SafetyStock);
        Assert.Equal(0, _w.Pos().Available);
        var row = Assert.Single(_w.Fx.Ledger);
        Assert.Equal(("safety_stock_set", 10L, 0L), (row.Type, row.Quantity, row.AvailableAfter));
    }

    [Fact]
    public void safety_stock_can_be_lowered_while_available_is_negative()
    {
        _w.Stock(10);
        _w.Shard.SetSafetyStock("A", "L1", 5, _w.Now, "corr", _w.Fx);
        _w.Apply(EventType.Sold, 8); // available -3

        var outcome = _w.Shard.SetSafetyStock("A", "L1", 1, _w.Now, "corr", _w.Fx);

        Assert.Equal(MasterDataResult.Updated, outcome.Result);
        Assert.Equal(1, _w.Pos().Available);
    }

    [Fact]
    public void safety_stock_cannot_be_raised_while_available_is_negative()
    {
        _w.Stock(1);
        _w.Apply(EventType.Sold, 3);

        var outcome = _w.Shard.SetSafetyStock("A", "L1", 1, _w.Now, "corr", _w.Fx);

        Assert.Equal(MasterDataResult.Rejected, outcome.Result);
        Assert.Equal(0, _w.Pos().SafetyStock);
    }

    [Fact]
    public void safety_stock_on_an_untouched_position_is_only_accepted_at_zero()
    {
        Assert.Equal(MasterDataResult.Rejected, _w.Shard.SetSafetyStock("A", "L1", 1, _w.Now, "corr", _w.Fx).Result);
        Assert.Null(_w.Shard.FindPosition("A", "L1"));

        Assert.Equal(MasterDataResult.Created, _w.Shard.SetSafetyStock("A", "L1", 0, _w.Now, "corr", _w.Fx).Result);
        Assert.NotNull(_w.Shard.FindPosition("A", "L1"));
    }

    [Fact]
    public void safety_stock_at_an_unknown_location_is_rejected()
    {
        var outcome = _w.Shard.SetSafetyStock("A", "nowhere", 0, _w.Now, "corr", _w.Fx);

        Assert.Equal((MasterDataResult.Rejected, RejectionTypes.UnknownLocation), (outcome.Result, outcome.ErrorType));
        Assert.Equal(0, _w.Shard.PositionCount);
    }

    // ------------------------------------------------------------------ export / import

    private void BusyDay()
    {
        _w.Stock(20, at: _w.At(-60));
        _w.Stock(8, location: "L2", at: _w.At(-60));
        _w.Apply(EventType.Damaged, 2, at: _w.At(-50));
        _w.Apply(EventType.ReturnReceived, 3, at: _w.At(-40));
        _w.Apply(EventType.Counted, 22, at: _w.At(-45));
        _w.Apply(EventType.Sold, 1, at: _w.At(-30), seq: 4, source: "pos");
        _w.Apply(EventType.TransferShipped, 2, location: "L2", to: "L1", at: _w.At(-20));
        _w.Order("committed", "web", Line("A", 3));
        _w.ReserveFor("held", "web", 300, Line("A", 2, "L2"));
        _w.ReserveFor("released", "web", 300, Line("A", 1));
        _w.Release("released");
        _w.Apply(EventType.Shipped, 1, reservationId: "committed", at: _w.At(-1));
    }

    [Fact]
    public void export_then_import_reproduces_the_whole_state()
    {
        BusyDay();
        var exported = _w.Shard.Export();

        var imported = Shard.Import(exported);

        Assert.Equal(Snapshot.Of(exported), Snapshot.Of(imported));
        Assert.Equal(_w.Shard.PositionCount, imported.PositionCount);
        Assert.Equal(_w.Shard.RememberedEventCount, imported.RememberedEventCount);
        Assert.Equal(_w.Shard.ReservationCount, imported.ReservationCount);
        Assert.Equal(_w.Pos("A", "L1").Available, imported.AvailableAt("A", "L1"));
    }

    [Fact]
    public void export_is_detached_from_the_shard()
    {
        BusyDay();
        var exported = _w.Shard.Export();
        var text = Snapshot.Of(exported);

        _w.Apply(EventType.Received, 100);
        _w.Release("committed");

        Assert.Equal(text, Snapshot.Of(exported));
    }

    [Fact]
    public void imported_shard_continues_exactly_like_the_original()
    {
        BusyDay();
        var imported = Shard.Import(_w.Shard.Export());
        var twin = new Twin(_w.Shard, imported, _w.Now);
        var lateCount = _w.Event(EventType.Counted, 15, at: _w.At(-35));   // adds back the remembered movements
        var sale = _w.Event(EventType.Sold, 1, at: _w.At(-30));
        var gap = _w.Event(EventType.Received, 1, seq: 7, source: "pos");   // 5 and 6 missing
        var shipment = _w.Event(EventType.Shipped, 2, reservationId: "committed");
        var resent = _w.Event(EventType.Sold, 1, at: _w.At(-30), id: sale.EventId);

        twin.Do((s, fx, now) => s.ApplyEvent(lateCount, now, fx));
        twin.Do((s, fx, now) => s.ApplyEvent(sale, now, fx));
        twin.Do((s, fx, now) => s.ApplyEvent(gap, now, fx));
        twin.Do((s, fx, now) => s.ExpireDue(now.AddSeconds(300), fx));
        twin.Do((s, fx, now) => s.ApplyEvent(shipment, now, fx));
        twin.Do((s, fx, now) => s.CommitReservation("held", now, "c", fx).Result);
        twin.Do((s, fx, now) => s.ApplyEvent(resent, now, fx));
        twin.Do((s, fx, now) => s.CreateReservation(Request("new", "web", 60, Line("A", 2)), now, fx).Result);

        Assert.Equal(Snapshot.Of(_w.Shard), Snapshot.Of(imported));
        Assert.Equal(11, imported.FindPosition("A", "L1")!.OnHand); // 15 - 2 later movements, -1 sale, +1 receipt, -2 shipped
        Assert.Equal(ReservationStatus.Expired, imported.FindReservation("held")!.Status);
        Assert.Equal(ReservationStatus.Fulfilled, imported.FindReservation("committed")!.Status);
        Assert.Contains(twin.Exceptions, x => x.Type == ExceptionTypes.SequenceGap);
    }

    [Fact]
    public void imported_shard_still_knows_the_remembered_event_ids()
    {
        var e = _w.Event(EventType.Received, 5);
        _w.Apply(e);

        var imported = Shard.Import(_w.Shard.Export());

        Assert.Equal(EventStatus.Duplicate, imported.ApplyEvent(e, _w.Now, new Effects()).Status);
        Assert.Equal(EventStatus.Rejected, imported.ApplyEvent(e with { Fingerprint = new Fingerprint(9, 9) }, _w.Now, new Effects()).Status);
    }

    [Fact]
    public void imported_shard_keeps_the_count_history_and_its_horizon()
    {
        var start = _w.At(-10_000);
        for (var i = 0; i <= Limits.OnHandHistoryMax; i++)
        {
            _w.Stock(1, at: start.AddSeconds(i));
        }
        var imported = Shard.Import(_w.Shard.Export());

        var tooOld = _w.Event(EventType.Counted, 0, at: start.AddSeconds(-1));
        Assert.Equal(RejectionTypes.CountBeyondHistory, imported.ApplyEvent(tooOld, _w.Now, new Effects()).ErrorType);

        var late = _w.Event(EventType.Counted, 0, at: start.AddSeconds(0.5));
        Assert.Equal(EventStatus.Applied, imported.ApplyEvent(late, _w.Now, new Effects()).Status);
        Assert.Equal(Limits.OnHandHistoryMax, imported.FindPosition("A", "L1")!.OnHand);
    }

    /// <summary>
    /// Positions as the version before the movement history became one array of pairs wrote them
    /// (the hub's JSON options, JsonSerializerDefaults.Web): A@L1 counted at 08:00, then sold 2 at
    /// 08:20 and received 5 at 08:30 (recorded out of order); A@L2 received 7 at 08:40, never counted.
    /// </summary>
    private const string SnapshotBeforePairedHistory = """
        {"locations":[{"id":"L1","name":"Store 1","type":0},{"id":"L2","name":"Warehouse","type":1},{"id":"L3","name":"DC","type":2}],"channels":[],"positions":[{"sku":"A","locationId":"L1","onHand":13,"damaged":0,"inspection":0,"allocated":0,"reserved":0,"incoming":0,"safetyStock":0,"countedAt":"2025-03-01T08:00:00+00:00","historyHorizonTicks":-9223372036854775808,"historyTicks":[638764140000000000,638764146000000000],"historyDeltas":[-2,5]},{"sku":"A","locationId":"L2","onHand":7,"damaged":0,"inspection":0,"allocated":0,"reserved":0,"incoming":0,"safetyStock":0,"countedAt":null,"historyHorizonTicks":-9223372036854775808,"historyTicks":[638764152000000000],"historyDeltas":[7]}],"reservations":[],"events":[],"sourceSequences":{},"hasForgotten":false,"degradations":[],"channelVelocities":[],"velocities":[]}
        """;

    [Fact]
    public void a_snapshot_written_before_the_history_became_one_array_still_loads_and_is_written_the_same()
    {
        var options = new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web);
        var state = System.Text.Json.JsonSerializer.Deserialize<ShardState>(SnapshotBeforePairedHistory, options)!;

        var shard = Shard.Import(state);

        Assert.Equal(SnapshotBeforePairedHistory.Trim(), System.Text.Json.JsonSerializer.Serialize(shard.Export(), options));
        Assert.Equal(13, shard.OnHandAsOf("A", "L1", _w.At(0)));
        Assert.Equal(8, shard.OnHandAsOf("A", "L1", _w.At(-35)));
        Assert.Equal(10, shard.OnHandAsOf("A", "L1", _w.At(-50)));
        Assert.Null(shard.OnHandAsOf("A", "L1", _w.At(-70)));
        Assert.Equal(0, shard.OnHandAsOf("A", "L2", _w.At(-50)));
        // A late count adds back the movements remembered after it: 20 - 2 + 5.
        Assert.Equal(EventStatus.Applied, shard.ApplyEvent(_w.Event(EventType.Counted, 20, at: _w.At(-50)), _w.Now, new Effects()).Status);
        Assert.Equal(23, shard.FindPosition("A", "L1")!.OnHand);
    }

    // ------------------------------------------------------------------ prune

    [Fact]
    public void prune_forgets_event_ids_older_than_the_retention()
    {
        var w = new World(retentionDays: 2);
        var old = w.Event(EventType.Received, 5);
        w.Apply(old);
        w.Now = World.T0.AddDays(1);
        var recent = w.Event(EventType.Received, 1);
        w.Apply(recent);

        Assert.Equal(0, w.Shard.Prune(World.T0.AddDays(2), w.Fx));            // exactly the retention: still remembered
        Assert.Equal(1, w.Shard.Prune(World.T0.AddDays(2).AddTicks(1), w.Fx));

        Assert.Equal(1, w.Shard.RememberedEventCount);
        Assert.Equal(EventStatus.Duplicate, w.Apply(recent).Status);
        Assert.Equal(EventStatus.Applied, w.Apply(old).Status); // forgotten: applied again
        Assert.Equal(11, w.Pos().OnHand);
    }

    [Fact]
    public void prune_forgets_ended_reservations_but_keeps_live_ones()
    {
        var w = new World(retentionDays: 1);
        w.Stock(20);
        w.Reserve("released", "web", Line("A", 1));
        w.Release("released");
        w.Order("fulfilled", "web", Line("A", 1));
        w.Apply(EventType.Shipped, 1, reservationId: "fulfilled");
        w.ReserveFor("expired", "web", 60, Line("A", 1));
        w.Shard.ExpireDue(w.Now.AddSeconds(60), w.Fx);
        w.Order("committed", "web", Line("A", 1));
        w.ReserveFor("held", "web", Limits.TtlSecondsMax, Line("A", 1));

        var forgotten = w.Shard.Prune(w.Now.AddDays(2), w.Fx);

        Assert.Equal(3 + 2, forgotten); // three ended reservations and the two event ids
        Assert.Null(w.Shard.FindReservation("released"));
        Assert.Null(w.Shard.FindReservation("fulfilled"));
        Assert.Null(w.Shard.FindReservation("expired"));
        Assert.NotNull(w.Shard.FindReservation("committed"));
        Assert.NotNull(w.Shard.FindReservation("held"));
        Assert.Equal(1, w.Pos().Allocated);
        Assert.Equal(1, w.Pos().Reserved);
    }

    [Fact]
    public void pruned_reservation_id_can_be_used_again()
    {
        var w = new World(retentionDays: 1);
        w.Stock(20);
        w.Reserve("r1", "web", Line("A", 1));
        w.Release("r1");
        w.Now = w.Now.AddDays(2);
        w.Shard.Prune(w.Now, w.Fx);

        var again = w.Reserve("r1", "web", Line("A", 5));

        Assert.Equal(ReservationResult.Created, again.Result);
        Assert.Equal(5, w.Pos().Reserved);
    }

    [Fact]
    public void shipment_against_a_pruned_reservation_is_rejected_as_unknown()
    {
        var w = new World(retentionDays: 1);
        w.Stock(20);
        w.Order("r1", "web", Line("A", 1));
        w.Apply(EventType.Shipped, 1, reservationId: "r1");
        w.Now = w.Now.AddDays(2);
        w.Shard.Prune(w.Now, w.Fx);

        Assert.Equal(RejectionTypes.UnknownReservation, w.Apply(EventType.Shipped, 1, reservationId: "r1").ErrorType);
    }
}
