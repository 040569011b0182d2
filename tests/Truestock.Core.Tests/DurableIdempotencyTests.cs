namespace Truestock.Core.Tests;

/// <summary>
/// Ids forgotten by memory stay duplicates for ever: the host finds them in durable storage and
/// passes the first fingerprint along, and the engine decides as if it still remembered.
/// </summary>
public sealed class DurableIdempotencyTests
{
    [Fact]
    public void an_event_the_host_found_durably_with_the_same_content_is_a_duplicate_and_changes_nothing()
    {
        var w = new World();
        w.Stock(5);
        var before = w.State();
        var fingerprint = new Fingerprint(7, 7);

        var outcome = w.Apply(w.Event(EventType.Received, 3, id: "old-event", fingerprint: fingerprint) with { PriorFingerprint = fingerprint });

        Assert.Equal(EventStatus.Duplicate, outcome.Status);
        Assert.Equal(before, w.State());
    }

    [Fact]
    public void an_event_the_host_found_durably_with_other_content_is_rejected_as_a_conflict()
    {
        var w = new World();
        w.Stock(5);

        var outcome = w.Apply(w.Event(EventType.Received, 3, id: "old-event", fingerprint: new Fingerprint(1, 1))
            with { PriorFingerprint = new Fingerprint(2, 2) });

        Assert.Equal(EventStatus.Rejected, outcome.Status);
        Assert.Equal(RejectionTypes.IdempotencyConflict, outcome.ErrorType);
        Assert.Equal(5, w.Pos().OnHand);
    }

    [Fact]
    public void accepted_events_and_created_reservations_are_reported_for_durable_keeping_and_rejected_ones_are_not()
    {
        var w = new World();
        w.Apply(w.Event(EventType.Received, 5, id: "kept"));
        w.Apply(w.Event(EventType.Received, 5, location: "nowhere", id: "refused"));
        w.Reserve("r1", "web", World.Line("A", 1));

        Assert.Equal(["kept"], w.Fx.AcceptedEvents.Select(x => x.EventId));
        Assert.Equal(["r1"], w.Fx.CreatedReservations.Select(r => r.Id));
    }

    [Fact]
    public void a_reservation_request_found_durably_with_the_same_body_is_forgotten_and_holds_nothing()
    {
        var w = new World();
        w.Stock(5);
        var request = World.Request("old-order", "web", 900, World.Line("A", 2));

        var outcome = w.Reserve(request with { PriorFingerprint = request.Fingerprint });

        Assert.Equal(ReservationResult.Forgotten, outcome.Result);
        Assert.False(outcome.Journaled);
        Assert.Equal(0, w.Pos().Reserved);
    }

    [Fact]
    public void a_reservation_request_found_durably_with_another_body_is_a_conflict()
    {
        var w = new World();
        w.Stock(5);
        var request = World.Request("old-order", "web", 900, World.Line("A", 2));

        var outcome = w.Reserve(request with { PriorFingerprint = new Fingerprint(9, 9) });

        Assert.Equal(ReservationResult.Conflict, outcome.Result);
        Assert.Equal(0, w.Pos().Reserved);
    }

    [Fact]
    public void pruning_marks_the_shard_as_having_forgotten_and_reports_the_ended_reservations_to_archive()
    {
        var w = new World(retentionDays: 1);
        w.Stock(5);
        w.Reserve("r1", "web", World.Line("A", 1));
        w.Release("r1");
        Assert.False(w.Shard.HasForgotten);
        w.Fx.Clear();

        w.Shard.Prune(w.Now.AddDays(2), w.Fx);

        Assert.True(w.Shard.HasForgotten);
        Assert.Equal(["r1"], w.Fx.ForgottenReservations.Select(r => r.Id));
        Assert.True(Shard.Import(w.Shard.Export()).HasForgotten);
    }
}
