using System.Diagnostics;
using System.Text;
using System.Text.Json;
using RabbitMQ.Client;

namespace Truestock.Server.Tests;

/// <summary>
/// The broker path against a real RabbitMQ server (started by ./test.sh on 127.0.0.1): events
/// are acknowledged only once durable, poison goes to the dead-letter exchange with its reason,
/// redeliveries are duplicates, and a broker restart loses nothing.
/// </summary>
[Collection(Disruptive.Name)]
public sealed class RabbitMqIngestionTests : IAsyncLifetime
{
    private readonly string _queue = "ts-test-" + Guid.NewGuid().ToString("N")[..12];
    private IConnection _connection = null!;
    private IChannel _channel = null!;

    private static string BrokerUri => Environment.GetEnvironmentVariable("TRUESTOCK_TEST_RABBITMQ")
        ?? throw new InvalidOperationException("TRUESTOCK_TEST_RABBITMQ is not set: broker tests need the RabbitMQ server that ./test.sh installs and starts. Run ./test.sh.");

    private string DeadQueue => _queue + ".dead";

    private string[] HubArgs =>
    [
        "--Truestock:RabbitMq:Uri=" + BrokerUri,
        "--Truestock:RabbitMq:Queue=" + _queue,
        "--Truestock:RabbitMq:DeadLetterExchange=" + _queue + ".dlx",
        "--Truestock:RabbitMq:DeadLetterQueue=" + DeadQueue,
        "--Truestock:RabbitMq:PrefetchCountMax=64",
    ];

    public async Task InitializeAsync()
    {
        var factory = new ConnectionFactory { Uri = new Uri(BrokerUri), AutomaticRecoveryEnabled = true, NetworkRecoveryInterval = TimeSpan.FromSeconds(1) };
        _connection = await factory.CreateConnectionAsync();
        _channel = await _connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        // Declared here too (same arguments as the hub), so that nothing published before the hub's consumer starts is unroutable.
        await _channel.QueueDeclareAsync(_queue, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-dead-letter-exchange"] = _queue + ".dlx" });
    }

    public async Task DisposeAsync()
    {
        await _channel.QueueDeleteAsync(_queue);
        await _channel.QueueDeleteAsync(DeadQueue);
        await _channel.ExchangeDeleteAsync(_queue + ".dlx");
        await _channel.DisposeAsync();
        await _connection.DisposeAsync();
    }

    private async Task Publish(string body, string? messageId = null)
    {
        var properties = new BasicProperties { Persistent = true, ContentType = "application/json", MessageId = messageId ?? Guid.NewGuid().ToString("N") };
        await _channel.BasicPublishAsync("", _queue, mandatory: true, properties, Encoding.UTF8.GetBytes(body));
    }

    private static string Body(params object[] events) => JsonSerializer.Serialize(new { events });

    private static async Task<HubServer> StartHub(string[] args)
    {
        var hub = await HubServer.Start(args);
        await hub.Setup();
        return hub;
    }

    /// <summary>Waits (bounded) until the position shows the on-hand quantity.</summary>
    private static async Task<long> WaitForOnHand(HubServer hub, string sku, long expected, TimeSpan limit)
    {
        var watch = Stopwatch.StartNew();
        long onHand;
        do
        {
            onHand = (await hub.Position(sku, "WH1")).GetProperty("onHand").GetInt64();
            if (onHand == expected)
            {
                return onHand;
            }
            await Task.Delay(50);
        }
        while (watch.Elapsed < limit);
        return onHand;
    }

    private async Task<(string Reason, string Detail, string Body)?> NextDeadLetter(TimeSpan limit)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < limit)
        {
            try
            {
                var message = await _channel.BasicGetAsync(DeadQueue, autoAck: true);
                if (message is not null)
                {
                    var headers = message.BasicProperties.Headers!;
                    return (Encoding.UTF8.GetString((byte[])headers["x-truestock-reason"]!), Encoding.UTF8.GetString((byte[])headers["x-truestock-detail"]!),
                        Encoding.UTF8.GetString(message.Body.Span));
                }
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                // The hub has not declared the dead-letter queue yet.
                _channel = await _connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
            }
            await Task.Delay(50);
        }
        return null;
    }

    private async Task<uint> Depth(string queue) => (await _channel.QueueDeclarePassiveAsync(queue)).MessageCount;

    [Fact]
    public async Task events_from_the_queue_are_applied_and_acknowledged_only_once_durable()
    {
        await using var hub = await StartHub(HubArgs);
        await Publish(Body(HubServer.Event("received", "Q1", "WH1", 5), HubServer.Event("sold", "Q1", "WH1", 2)));

        Assert.Equal(3, await WaitForOnHand(hub, "Q1", 3, TimeSpan.FromSeconds(20)));
        var ledger = await HubServer.WholeLedger(hub.Client, "Q1", "WH1");
        Assert.Equal(["received", "sold"], ledger.Select(e => e.GetProperty("type").GetString()));
        await Task.Delay(200);
        Assert.Equal(0u, await Depth(_queue));
        Assert.Contains("truestock_broker_messages_total{outcome=\"acked\"} 1", await hub.Client.GetStringAsync("/metrics"));
    }

    [Fact]
    public async Task a_redelivered_message_is_a_duplicate_and_changes_nothing()
    {
        await using var hub = await StartHub(HubArgs);
        var body = Body(HubServer.Event("received", "Q2", "WH1", 4, eventId: "q2-once"));
        await Publish(body);
        await Publish(body);
        await Publish(body);

        Assert.Equal(4, await WaitForOnHand(hub, "Q2", 4, TimeSpan.FromSeconds(20)));
        var watch = Stopwatch.StartNew();
        while (await Depth(_queue) > 0 && watch.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(50);
        }
        await Task.Delay(300);
        Assert.Equal(4, (await hub.Position("Q2", "WH1")).GetProperty("onHand").GetInt64());
        Assert.Single(await HubServer.WholeLedger(hub.Client, "Q2", "WH1"));
    }

    [Theory]
    [InlineData("{not json", "malformed")]
    [InlineData("[1,2,3]", "malformed")]
    [InlineData("{\"events\":[{\"eventId\":\"bad\",\"type\":\"received\",\"sku\":\"Q3\",\"locationId\":\"WH1\",\"quantity\":-4,\"occurredAt\":\"2026-11-23T09:00:00Z\",\"source\":\"wms\"}]}", "invalid")]
    [InlineData("{\"events\":[]}", "invalid")]
    public async Task a_poison_message_goes_to_the_dead_letter_exchange_with_its_reason_and_changes_nothing(string body, string reason)
    {
        await using var hub = await StartHub(HubArgs);
        await Publish(body);

        var dead = await NextDeadLetter(TimeSpan.FromSeconds(20));

        Assert.NotNull(dead);
        Assert.Equal(reason, dead.Value.Reason);
        Assert.False(string.IsNullOrWhiteSpace(dead.Value.Detail));
        Assert.Equal(body, dead.Value.Body);
        Assert.Equal(0, (await hub.Position("Q3", "WH1")).GetProperty("onHand").GetInt64());
        Assert.Equal(0u, await Depth(_queue));
    }

    [Fact]
    public async Task rejected_events_are_dead_lettered_with_their_reasons_while_the_others_apply()
    {
        await using var hub = await StartHub(HubArgs);
        await Publish(Body(HubServer.Event("received", "Q4", "WH1", 6), HubServer.Event("received", "Q4", "NOWHERE", 1, eventId: "q4-lost")));

        var dead = await NextDeadLetter(TimeSpan.FromSeconds(20));

        Assert.NotNull(dead);
        Assert.Equal("rejected", dead.Value.Reason);
        Assert.Contains("q4-lost", dead.Value.Detail);
        Assert.Contains("unknown-location", dead.Value.Detail);
        Assert.Equal(6, (await hub.Position("Q4", "WH1")).GetProperty("onHand").GetInt64());
    }

    [Fact]
    public async Task a_broker_restart_mid_stream_loses_nothing_and_applies_everything_exactly_once()
    {
        var rabbitmqctl = Environment.GetEnvironmentVariable("TRUESTOCK_TEST_RABBITMQCTL")
            ?? throw new InvalidOperationException("TRUESTOCK_TEST_RABBITMQCTL is not set: run ./test.sh, which starts RabbitMQ.");
        await using var hub = await StartHub(HubArgs);
        const int messages = 300;
        for (var i = 0; i < messages / 2; i++)
        {
            await Publish(Body(HubServer.Event("received", "Q5", "WH1", 1, eventId: $"q5-{i}")));
        }

        // Restart the broker application while the hub is consuming: connections drop, unacknowledged
        // messages return to the (durable) queue, and the client reconnects by itself.
        Ctl(rabbitmqctl, "stop_app");
        Ctl(rabbitmqctl, "start_app");
        await Reconnect();
        for (var i = messages / 2; i < messages; i++)
        {
            await Publish(Body(HubServer.Event("received", "Q5", "WH1", 1, eventId: $"q5-{i}")));
        }

        Assert.Equal(messages, await WaitForOnHand(hub, "Q5", messages, TimeSpan.FromSeconds(60)));
        var ids = (await HubServer.WholeLedger(hub.Client, "Q5", "WH1")).Select(e => e.GetProperty("eventId").GetString()).ToList();
        Assert.Equal(messages, ids.Count);
        Assert.Equal(messages, ids.Distinct().Count());
    }

    private async Task Reconnect()
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await _channel.DisposeAsync();
                await _connection.DisposeAsync();
                await InitializeAsync();
                return;
            }
            catch (RabbitMQ.Client.Exceptions.BrokerUnreachableException) when (watch.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(200);
            }
        }
    }

    private static void Ctl(string rabbitmqctl, string command)
    {
        var info = new ProcessStartInfo(rabbitmqctl) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        var node = Environment.GetEnvironmentVariable("TRUESTOCK_TEST_RABBITMQ_NODE");
        if (node is not null)
        {
            info.ArgumentList.Add("-n");
            info.ArgumentList.Add(node);
        }
        info.ArgumentList.Add(command);
        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), $"rabbitmqctl {command} did not finish within 60 s.");
        Assert.True(p.ExitCode == 0, $"rabbitmqctl {command} failed: {output.Result}\n{error.Result}");
    }
}
