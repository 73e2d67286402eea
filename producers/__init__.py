"""The event contract and the clients that write events to Kafka."""

from producers.events import SCHEMA_VERSION, DecodedMessage, Rejection, decode_message, encode_envelope, encode_event
from producers.kafka import KafkaConnection
from producers.sdk import DEFAULT_INFERENCE_TOPIC, DEFAULT_LABEL_TOPIC, DeliveryStats, InferenceLogger, LabelLogger

__all__ = [
    "DEFAULT_INFERENCE_TOPIC",
    "DEFAULT_LABEL_TOPIC",
    "SCHEMA_VERSION",
    "DecodedMessage",
    "DeliveryStats",
    "InferenceLogger",
    "KafkaConnection",
    "LabelLogger",
    "Rejection",
    "decode_message",
    "encode_envelope",
    "encode_event",
]
