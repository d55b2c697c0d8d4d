"""Test helpers shared by every service's suite: real Kafka readers and writers, a running app with an HTTP
client, tokens, and polling for eventually-consistent effects. No mocks of Kafka or the database here."""
