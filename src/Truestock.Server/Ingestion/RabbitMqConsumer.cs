using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Truestock.Core;
using Truestock.Server.Engine;
using Truestock.Server.Http;

namespace Truestock.Server.Ingestion;

/// <summary>
/// Consumes canonical events v1 from RabbitMQ: the body of a message is the body of
/// POST /v1/events (<c>{"events":[...]}</c>). A message is acknowledged only after the engine has
/// made its events durable; up to PrefetchCountMax messages are in flight, so they share group
/// commits. Unparseable messages and rejected events go to the dead-letter exchange with the
/// reason in headers; a redelivered message is answered by idempotency. The client's automatic
/// recovery reconnects after broker restarts and re-declares the topology.
/// </summary>
internal sealed class RabbitMqConsumer(IOptions<HubOptions> options, Sequencer engine, HubMetrics metrics, ILogger<RabbitMqConsumer> log)
    : BackgroundService
{
    public const string ReasonHeader = "x-truestock-reason";
    public const string DetailHeader = "x-truestock-detail";
    private static readonly TimeSpan RetryDelayMax = TimeSpan.FromSeconds(30);
    private readonly RabbitMqOptions _options = options.Value.RabbitMq;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromSeconds(1);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Consume(stoppingToken);
                return;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.BrokerUnreachableException or RabbitMQ.Client.Exceptions.OperationInterruptedException
                or RabbitMQ.Client.Exceptions.AlreadyClosedException or IOException)
            {
                log.LogWarning("RabbitMQ at {Host} is unreachable ({Message}); retrying in {Delay} s.",
                    new Uri(_options.Uri!).Host, ex.Message, delay.TotalSeconds);
                await Task.Delay(delay, stoppingToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, RetryDelayMax.Ticks));
            }
        }
    }

    private async Task Consume(CancellationToken stoppingToken)
    {
        var prefetch = (ushort)Math.Clamp(_options.PrefetchCountMax, 1, 10_000);
        var factory = new ConnectionFactory
        {
            Uri = new Uri(_options.Uri!),
            AutomaticRecoveryEnabled = true,
            TopologyRecoveryEnabled = true,
            NetworkRecoveryInterval = TimeSpan.FromSeconds(1),
            ConsumerDispatchConcurrency = prefetch,
            ClientProvidedName = "truestock-hub",
        };
        await using var connection = await factory.CreateConnectionAsync(stoppingToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: stoppingToken);
        // Dead letters are published with confirms, so the original is acknowledged only once its dead letter is safe.
        await using var deadLetters = await connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), stoppingToken);

        await channel.ExchangeDeclareAsync(_options.DeadLetterExchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: stoppingToken);
        await channel.QueueDeclareAsync(_options.DeadLetterQueue, durable: true, exclusive: false, autoDelete: false, cancellationToken: stoppingToken);
        await channel.QueueBindAsync(_options.DeadLetterQueue, _options.DeadLetterExchange, "", cancellationToken: stoppingToken);
        await channel.QueueDeclareAsync(_options.Queue, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-dead-letter-exchange"] = _options.DeadLetterExchange }, cancellationToken: stoppingToken);
        await channel.BasicQosAsync(0, prefetch, global: false, stoppingToken);

        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, delivery) => Handle(channel, deadLetters, delivery, stoppingToken);
        await channel.BasicConsumeAsync(_options.Queue, autoAck: false, consumer, stoppingToken);
        log.LogInformation("Consuming events from RabbitMQ queue {Queue} (prefetch {Prefetch}); poison messages go to {Dlx}.",
            _options.Queue, prefetch, _options.DeadLetterExchange);
        await Task.Delay(Timeout.Infinite, stoppingToken);
    }

    private async Task Handle(IChannel channel, IChannel deadLetters, BasicDeliverEventArgs delivery, CancellationToken stoppingToken)
    {
        try
        {
            await Decide(channel, deadLetters, delivery, stoppingToken);
        }
        catch (EngineUnavailableException ex)
        {
            // Nothing was applied; the message goes back to the queue and is tried again shortly.
            metrics.BrokerMessage("requeued");
            log.LogWarning("Engine unavailable ({Message}); message {Tag} requeued.", ex.Message, delivery.DeliveryTag);
            await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
            await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true, stoppingToken);
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.AlreadyClosedException or RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            // The channel closed under us (broker restart): the message was not acknowledged, so the
            // broker redelivers it after recovery and idempotency answers it as a duplicate.
            log.LogWarning("Channel closed before message {Tag} was settled ({Message}); the broker will redeliver it.", delivery.DeliveryTag, ex.Message);
        }
    }

    private async Task Decide(IChannel channel, IChannel deadLetters, BasicDeliverEventArgs delivery, CancellationToken stoppingToken)
    {
        var body = delivery.Body;
        var correlationId = delivery.BasicProperties.CorrelationId ?? delivery.BasicProperties.MessageId ?? Guid.NewGuid().ToString("N");
        if (body.Length > _options.MessageBytesMax)
        {
            await DeadLetter(channel, deadLetters, delivery, "body-too-large", $"The message has {body.Length} bytes; at most {_options.MessageBytesMax} are accepted.", stoppingToken);
            return;
        }
        List<StockEvent> events;
        if (!System.Text.Unicode.Utf8.IsValid(body.Span))
        {
            await DeadLetter(channel, deadLetters, delivery, "malformed", "The body is not valid UTF-8.", stoppingToken);
            return;
        }
        try
        {
            using var document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 32 });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                await DeadLetter(channel, deadLetters, delivery, "malformed", "The body must be a JSON object like the body of POST /v1/events.", stoppingToken);
                return;
            }
            var input = new JsonInput();
            events = EventEndpoints.ParseBatch(document.RootElement, input, correlationId);
            if (input.Describe() is { } problems)
            {
                await DeadLetter(channel, deadLetters, delivery, "invalid", problems, stoppingToken);
                return;
            }
        }
        catch (JsonException ex)
        {
            await DeadLetter(channel, deadLetters, delivery, "malformed", $"The body is not valid JSON: {ex.Message}", stoppingToken);
            return;
        }

        var outcomes = await EventEndpoints.Apply(engine, metrics, events);
        var rejected = outcomes.Select((o, i) => (o, e: events[i])).Where(x => x.o.Status == EventStatus.Rejected)
            .Select(x => new { eventId = x.e.EventId, type = x.o.ErrorType, detail = x.o.ErrorDetail }).ToArray();
        if (rejected.Length > 0)
        {
            // The other events are applied and durable; the message is kept whole for a replay after the fix,
            // where the applied ones will answer as duplicates.
            await DeadLetter(channel, deadLetters, delivery, "rejected", JsonSerializer.Serialize(rejected), stoppingToken);
            return;
        }
        await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false, stoppingToken);
        metrics.BrokerMessage("acked");
    }

    private async Task DeadLetter(IChannel channel, IChannel deadLetters, BasicDeliverEventArgs delivery, string reason, string detail, CancellationToken stoppingToken)
    {
        var properties = new BasicProperties
        {
            Persistent = true,
            ContentType = delivery.BasicProperties.ContentType ?? "application/json",
            CorrelationId = delivery.BasicProperties.CorrelationId,
            MessageId = delivery.BasicProperties.MessageId,
            Headers = new Dictionary<string, object?>
            {
                [ReasonHeader] = reason,
                [DetailHeader] = Encoding.UTF8.GetBytes(detail.Length > 4000 ? detail[..4000] : detail),
                ["x-truestock-queue"] = _options.Queue,
            },
        };
        await deadLetters.BasicPublishAsync(_options.DeadLetterExchange, "", mandatory: false, properties, delivery.Body, stoppingToken);
        await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false, stoppingToken);
        metrics.BrokerMessage("dead_lettered");
        log.LogWarning("Message {MessageId} dead-lettered ({Reason}): {Detail}", delivery.BasicProperties.MessageId, reason, detail);
    }
}
