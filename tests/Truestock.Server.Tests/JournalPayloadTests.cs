using System.Text.Json;
using Truestock.Core;
using Truestock.Server.Engine;
using Truestock.Server.Storage;

namespace Truestock.Server.Tests;

/// <summary>
/// Replay reads the common payloads with hand-written readers (<see cref="JournalPayloads"/>) and
/// everything else with System.Text.Json. These tests pin that both give the same commands, that
/// the fast readers take every payload the hub writes, and that anything else still decodes as before.
/// </summary>
public sealed class JournalPayloadTests
{
    private static readonly DateTimeOffset At = new(2026, 3, 4, 5, 6, 7, 891, TimeSpan.Zero);

    private static StockEvent Event(string id, EventType type) => new()
    {
        EventId = id,
        Type = type,
        Sku = "SKU-1",
        LocationId = "WH1",
        Quantity = 3,
        OccurredAt = At,
        Source = "erp",
        CorrelationId = "c-1",
        Fingerprint = new Fingerprint(ulong.MaxValue, 42),
    };

    /// <summary>Every property set at least once, with values that need escaping, offsets and the extremes of each number.</summary>
    private static StockEvent[] Events() =>
    [
        .. Enum.GetValues<EventType>().Select((t, i) => Event($"e-{i}", t)),
        Event("e-all", EventType.TransferShipped) with
        {
            Quantity = -Limits.QuantityMax,
            OccurredAt = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.FromHours(2)).AddTicks(1234567),
            SourceSeq = long.MaxValue,
            Reason = "quote \" backslash \\ newline \n é 😀",
            ReservationId = "r-1",
            ToLocationId = "S1",
            PriorFingerprint = new Fingerprint(0, ulong.MaxValue),
        },
        .. Enum.GetValues<Disposition>().Select(d => Event($"e-{d}", EventType.Inspected) with { Disposition = d }),
        Event("ünïcode-id", EventType.Adjusted) with { Sku = "Ä/B", Reason = "", SourceSeq = 0 },
    ];

    private static CreateReservation[] Reservations() =>
    [
        new()
        {
            ReservationId = "r-1",
            ChannelId = "web",
            TtlSeconds = 900,
            CorrelationId = "c-1",
            Lines = [new ReservationLineRequest("SKU-1", 2, null)],
            Fingerprint = new Fingerprint(1, 2),
        },
        new()
        {
            ReservationId = "r-\"2\"",
            ChannelId = "pos",
            TtlSeconds = Limits.TtlSecondsMax,
            CorrelationId = "c-2",
            Lines = [new ReservationLineRequest("A", 1, "WH1"), new ReservationLineRequest("B é", Limits.QuantityMax, null)],
            Fingerprint = new Fingerprint(ulong.MaxValue, 0),
            PriorFingerprint = new Fingerprint(3, 4),
        },
    ];

    private static JournalRecord Record(string kind, string payload) => new(7, At, kind, payload);

    /// <summary>What replay did before the fast readers: System.Text.Json with the journal's options, written back as JSON to compare.</summary>
    private static string ViaSerializer<T>(string payload) =>
        JsonSerializer.Serialize(JsonSerializer.Deserialize<T>(payload, CommandKinds.Json), CommandKinds.Json);

    [Fact]
    public void every_event_batch_the_hub_writes_is_read_by_the_fast_reader_into_the_same_events()
    {
        var json = JsonSerializer.Serialize(Events(), CommandKinds.Json);

        var fast = JournalPayloads.ReadEvents(json);

        Assert.NotNull(fast);
        Assert.Equal(Events(), fast);
        // Record equality ignores a DateTimeOffset's offset; the JSON round trip does not.
        Assert.Equal(json, JsonSerializer.Serialize(fast, CommandKinds.Json));
        Assert.Equal(ViaSerializer<StockEvent[]>(json), JsonSerializer.Serialize(fast, CommandKinds.Json));
    }

    [Fact]
    public void every_reservation_create_and_transition_the_hub_writes_is_read_by_the_fast_reader_into_the_same_command()
    {
        foreach (var command in Reservations())
        {
            var json = JsonSerializer.Serialize(command, CommandKinds.Json);
            var fast = JournalPayloads.ReadCreateReservation(json);
            Assert.NotNull(fast);
            Assert.Equal(json, JsonSerializer.Serialize(fast, CommandKinds.Json));
        }
        var transition = JsonSerializer.Serialize(new ReservationTransition("r-1", "c-\\1"), CommandKinds.Json);
        Assert.Equal(new ReservationTransition("r-1", "c-\\1"), JournalPayloads.ReadTransition(transition));
    }

    [Theory]
    // Casing, numbers as strings, enums as numbers: the serializer's Web defaults accept them.
    [InlineData("""[{"EventId":"e","type":"Received","sku":"S","locationId":"L","quantity":1,"occurredAt":"2026-01-01T00:00:00Z","source":"s","correlationId":"c","fingerprint":{"hi":1,"lo":2}}]""")]
    [InlineData("""[{"eventId":"e","type":"Received","sku":"S","locationId":"L","quantity":"1","occurredAt":"2026-01-01T00:00:00Z","source":"s","correlationId":"c","fingerprint":{"hi":1,"lo":2}}]""")]
    [InlineData("""[{"eventId":"e","type":1,"sku":"S","locationId":"L","quantity":1,"occurredAt":"2026-01-01T00:00:00Z","source":"s","correlationId":"c","fingerprint":{"hi":1,"lo":2}}]""")]
    [InlineData("""[{"eventId":"e","type":"sold","sku":"S","locationId":"L","quantity":1,"occurredAt":"2026-01-01T00:00:00Z","source":"s","correlationId":"c","fingerprint":{"hi":1,"lo":2}}]""")]
    // A property this build does not know, and an older journal without the optional ones.
    [InlineData("""[{"eventId":"e","type":"Sold","sku":"S","locationId":"L","quantity":1,"occurredAt":"2026-01-01T00:00:00Z","source":"s","correlationId":"c","fingerprint":{"hi":1,"lo":2},"newer":true}]""")]
    [InlineData("""[{"eventId":"e","type":"Sold","sku":"S","locationId":"L","quantity":1,"occurredAt":"2026-01-01T00:00:00+01:00","source":"s","correlationId":"c","fingerprint":{"lo":2,"hi":1}}]""")]
    // A fingerprint with one half missing: the serializer leaves it 0.
    [InlineData("""[{"eventId":"e","type":"Sold","sku":"S","locationId":"L","quantity":1,"occurredAt":"2026-01-01T00:00:00Z","source":"s","correlationId":"c","fingerprint":{"hi":1}}]""")]
    [InlineData("""[]""")]
    public void event_batches_in_any_shape_the_serializer_reads_decode_exactly_as_the_serializer_decodes_them(string payload)
    {
        var decoded = CommandKinds.Decode(Record(CommandKinds.Events, payload));

        Assert.Equal(ViaSerializer<StockEvent[]>(payload), JsonSerializer.Serialize((StockEvent[])decoded.Payload!, CommandKinds.Json));
    }

    [Theory]
    [InlineData("""{"reservationId":"r","channelId":"web","ttlSeconds":900,"correlationId":"c","lines":[{"sku":"S","quantity":1}],"fingerprint":{"hi":1,"lo":2}}""")]
    [InlineData("""{"reservationId":"r","channelId":"web","ttlSeconds":"900","correlationId":"c","lines":[{"sku":"S","quantity":1,"locationId":null}],"fingerprint":{"hi":1,"lo":2}}""")]
    [InlineData("""{"ReservationId":"r","channelId":"web","ttlSeconds":900,"correlationId":"c","lines":[],"fingerprint":{"hi":1,"lo":2},"priorFingerprint":null}""")]
    [InlineData("""{"reservationId":"r","channelId":"web","ttlSeconds":900,"correlationId":"c","lines":[{"Sku":"S","quantity":1}],"fingerprint":{"hi":1,"lo":2}}""")]
    public void reservation_creates_in_any_shape_the_serializer_reads_decode_exactly_as_the_serializer_decodes_them(string payload)
    {
        var decoded = CommandKinds.Decode(Record(CommandKinds.CreateReservation, payload));

        Assert.Equal(ViaSerializer<CreateReservation>(payload), JsonSerializer.Serialize((CreateReservation)decoded.Payload!, CommandKinds.Json));
    }

    [Fact]
    public void a_payload_the_serializer_rejects_is_still_rejected_with_the_serializers_error()
    {
        // A required property missing: the fast reader declines it, and the serializer says what is wrong.
        const string payload = """[{"eventId":"e","type":"Sold","sku":"S","locationId":"L","quantity":1,"source":"s","correlationId":"c","fingerprint":{"hi":1,"lo":2}}]""";

        Assert.Null(JournalPayloads.ReadEvents(payload));
        Assert.Throws<JsonException>(() => CommandKinds.Decode(Record(CommandKinds.Events, payload)));
        Assert.Throws<JsonException>(() => CommandKinds.Decode(Record(CommandKinds.Events, "[{\"eventId\":")));
    }

    [Fact]
    public void an_unknown_kind_is_refused_with_the_record_it_came_from()
    {
        var error = Assert.Throws<InvalidOperationException>(() => CommandKinds.Decode(Record("from.the.future", "{}")));

        Assert.Contains("Journal record 7", error.Message, StringComparison.Ordinal);
        Assert.Contains("from.the.future", error.Message, StringComparison.Ordinal);
    }
}
